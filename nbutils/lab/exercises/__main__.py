"""``python -m nbutils.lab.exercises``: see `nbutils.lab.exercises.cli`."""

import sys

from nbutils.lab.exercises.cli import main

sys.exit(main())
