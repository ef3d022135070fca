"""JupyterHub for a class that runs the course with nbgrader (`make classroom-check` uses this
file as it is; README, "Running a class").

    jupyterhub -f docs/classroom/jupyterhub_config.py

Real Unix accounts log in with their passwords (PAM) and each gets a single-user JupyterLab
of their own, started as that account (LocalProcessSpawner: the hub runs as root), because
nbgrader's exchange relies on file permissions: a student cannot read another's submission.
The instructor grades in their own server (the formgrader, in a browser tab of its own:
JupyterHub 4.1 and later forbid embedding it in a frame, nbgrader issue 1870).

Everything a lab changes is an environment variable (defaults in brackets):
    CLASSROOM_ROOT        the class folder: exchange/ cache/ hub/ jupyter/ [/srv/nbutils-class]
    CLASSROOM_VENV        the venv of jupyterhub, jupyterlab, nbgrader [/opt/nbutils-class/venv]
    CLASSROOM_INSTRUCTOR  the instructor's account [instructor]
    CLASSROOM_STUDENTS    the students' accounts, comma-separated [none]
    CLASSROOM_COURSE      nbgrader's course id [nbutils]
    CLASSROOM_URL         where the hub is served [http://127.0.0.1:8000]
    CLASSROOM_HUB_PORT, CLASSROOM_PROXY_API_PORT   the hub's and the proxy's API [8081, 8001]
    CLASSROOM_PROXY       configurable-http-proxy (npm) [configurable-http-proxy on PATH]
"""

import os
import pwd
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub provides it)
env = os.environ.get
ROOT = Path(env("CLASSROOM_ROOT", "/srv/nbutils-class"))
VENV = Path(env("CLASSROOM_VENV", "/opt/nbutils-class/venv"))
INSTRUCTOR = env("CLASSROOM_INSTRUCTOR", "instructor")
STUDENTS = [name for name in env("CLASSROOM_STUDENTS", "").split(",") if name]

# Where the hub listens: the public URL through the proxy, the hub's own API, the proxy's API.
c.JupyterHub.bind_url = env("CLASSROOM_URL", "http://127.0.0.1:8000")
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{env('CLASSROOM_HUB_PORT', '8081')}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env('CLASSROOM_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.command = [env("CLASSROOM_PROXY", "configurable-http-proxy")]
c.JupyterHub.db_url = f"sqlite:///{ROOT / 'hub' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(ROOT / "hub" / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(ROOT / "hub" / "proxy.pid")

# Who: PAM (the accounts' own passwords); only the class's accounts; the instructor is admin.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = {INSTRUCTOR, *STUDENTS}
c.Authenticator.admin_users = {INSTRUCTOR}

# Each user's JupyterLab, as their own account, from the class's venv. Its kernels are the
# `python3` kernelspec under CLASSROOM_ROOT/jupyter (the Python that has nbutils); nbgrader
# reads CLASSROOM_ROOT/jupyter/nbgrader_config.py (the exchange and the course id); nbutils
# reads its weights from the one shared cache, which students can read and not write.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    "CLASSROOM_ROOT": str(ROOT),
    "CLASSROOM_COURSE": env("CLASSROOM_COURSE", "nbutils"),
    "JUPYTER_PATH": str(ROOT / "jupyter"),
    "JUPYTER_CONFIG_PATH": str(ROOT / "jupyter"),
    "NBUTILS_CACHE_DIR": str(ROOT / "cache"),
    "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
}
if env("LD_LIBRARY_PATH"):  # a Python built with a shared libpython outside the usual places
    c.Spawner.environment["LD_LIBRARY_PATH"] = env("LD_LIBRARY_PATH")


def user_tmp(spawner) -> str:
    """Each account's own temporary folder (its home's .tmp): nothing of one user's in /tmp."""
    return str(Path(pwd.getpwnam(spawner.user.name).pw_dir) / ".tmp")


def make_user_tmp(spawner) -> None:
    entry = pwd.getpwnam(spawner.user.name)
    folder = Path(user_tmp(spawner))
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chown(folder, entry.pw_uid, entry.pw_gid)


c.Spawner.environment["TMPDIR"] = user_tmp  # JupyterHub calls it with the spawner
c.Spawner.pre_spawn_hook = make_user_tmp
c.Spawner.start_timeout = int(env("CLASSROOM_START_TIMEOUT", "120"))  # seconds
c.Spawner.http_timeout = int(env("CLASSROOM_START_TIMEOUT", "120"))
c.JupyterHub.cleanup_servers = True  # the hub stops every user's server when it stops

# make classroom-check only: a service whose token may create the users' own tokens, so that
# the check acts as each user through the Hub's and their servers' APIs. Absent in a class.
if env("CLASSROOM_CHECK_TOKEN"):
    c.JupyterHub.services = [{"name": "classroom-check",
                              "api_token": env("CLASSROOM_CHECK_TOKEN")}]
    c.JupyterHub.load_roles = [{"name": "classroom-check", "services": ["classroom-check"],
                                "scopes": ["admin:users", "admin:servers", "tokens"]}]
