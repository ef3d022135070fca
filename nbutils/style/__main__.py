"""``python -m nbutils.style``: the command line, `nbutils.extras.cli.style`."""

import sys

from nbutils.extras.cli.style import main

sys.exit(main())
