"""``python -m nbutils.exercises``: see `nbutils.exercises.cli`."""

import sys

from nbutils.exercises.cli import main

sys.exit(main())
