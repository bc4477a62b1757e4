"""Subcommands of the ``foleygen`` CLI, one module each (discovered by :mod:`foleygen.cli`)."""
