"""Redis dispatch: Lua scripts (``lua/``) and their typed wrapper."""
