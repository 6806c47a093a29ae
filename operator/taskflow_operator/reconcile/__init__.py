"""What the handlers delegate to: each module reconciles one concern of one kind."""
