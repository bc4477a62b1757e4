"""``python -m foleygen`` is the same as the ``foleygen`` command."""

import sys

from foleygen.cli import main

sys.exit(main())
