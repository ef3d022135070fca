"""nbgrader for the whole class: every user's server reads it from CLASSROOM_ROOT/jupyter
(JUPYTER_CONFIG_PATH, set by jupyterhub_config.py). The instructor's course folder has its own
nbgrader_config.py besides, written by ``python -m nbutils.lab.exercises --format nbgrader``."""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (nbgrader provides it)
ROOT = Path(os.environ.get("CLASSROOM_ROOT", "/srv/nbutils-class"))
c.CourseDirectory.course_id = os.environ.get("CLASSROOM_COURSE", "nbutils")
# The exchange: one folder every account can write to; nbgrader's own permissions keep each
# student's submissions and feedback from the others.
c.Exchange.root = str(ROOT / "exchange")
