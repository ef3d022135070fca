"""``python -m nbutils.faces``: the command line, `nbutils.extras.cli.faces`."""

import sys

from nbutils.extras.cli.faces import main

sys.exit(main())
