"""``python -m taskflow``: the ``taskflow`` command."""

from taskflow.cli import main

raise SystemExit(main())
