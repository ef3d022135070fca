"""JupyterHub for tools/classroom_check.py, and each user's single-user server driven
through its HTTP API with the user's own token: nbgrader's actions, the contents, and code
run in a kernel of that server over its websocket."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from browser_check import free_port, shorten

from classroom.deploy import CONFIG, CheckFailed, Classroom, SetupError


@dataclass
class Hub:
    url: str  # the proxy's public URL
    token: str  # the classroom-check service's
    log: Path
    proc: subprocess.Popen
    keep: Path | None = None  # where its log is copied when something fails

    def request(self, method: str, path: str, token: str | None = None, timeout: float = 30,
                **kwargs: Any) -> Any:
        import requests

        if self.proc.poll() is not None:
            raise CheckFailed(f"JupyterHub exited (status {self.proc.returncode}); its log: "
                              f"{self.log}")
        response = requests.request(method, f"{self.url}{path}", timeout=timeout, headers={
            "Authorization": f"token {token or self.token}"}, **kwargs)
        if response.status_code >= 400:
            raise CheckFailed(f"{method} {path}: HTTP {response.status_code}: "
                              f"{shorten(response.text, 400)}")
        return response.json() if response.content and "json" in response.headers.get(
            "content-type", "") else response.text


def start_hub(room: Classroom, python_venv: Path, args: Any, instructor: str,
              students: list[str], course: str) -> Hub:
    """JupyterHub (root, PAM, LocalProcessSpawner) and its proxy on 127.0.0.1, up: the public
    port ``args.port`` (else a free one), the hub's and the proxy's APIs on free ones."""
    import requests

    timeout = args.start_timeout
    port, hub_port, api_port = args.port or free_port(), free_port(), free_port()
    token = secrets.token_hex(32)
    env = dict(
        os.environ, CLASSROOM_ROOT=str(room.root), CLASSROOM_VENV=str(python_venv),
        CLASSROOM_INSTRUCTOR=instructor, CLASSROOM_STUDENTS=",".join(students),
        CLASSROOM_COURSE=course, CLASSROOM_URL=f"http://127.0.0.1:{port}",
        CLASSROOM_HUB_PORT=str(hub_port), CLASSROOM_PROXY_API_PORT=str(api_port),
        CLASSROOM_PROXY=str(args.proxy), CLASSROOM_CHECK_TOKEN=token,
        CLASSROOM_START_TIMEOUT=str(int(timeout)), **room.env,
        PATH=f"{python_venv / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    env.pop("VIRTUAL_ENV", None)
    log = room.root / "hub" / "jupyterhub.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(python_venv / "bin" / "jupyterhub"), "-f",
                                 str(CONFIG / "jupyterhub_config.py")],
                                cwd=room.root / "hub", env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    room.processes.append(proc)
    hub = Hub(f"http://127.0.0.1:{port}", token, log, proc, args.out)
    end = time.monotonic() + room.deadline.bound(timeout)
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SetupError(f"JupyterHub exited at start (status {proc.returncode}): "
                             f"{hub_problem(log, args.out)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{hub.url}/hub/api/", timeout=5).status_code == 200:
                return hub
        time.sleep(0.5)
    raise SetupError(f"JupyterHub did not answer on {hub.url} within {timeout:.0f} s: "
                     f"{hub_problem(log, args.out)}")


def kept_log(log: Path, keep: Path | None = None) -> Path:
    """The hub's log, copied to ``keep`` (the class folder does not stay): its path."""
    if keep is None or not log.exists():
        return log
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(log, keep / log.name)
    return keep / log.name


def hub_problem(log: Path, keep: Path | None = None) -> str:
    """What the hub's log says went wrong, in a line: the proxy's failure first, else its
    last error line (not the proxy's own error page, which a missing server asks for)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    where = kept_log(log, keep)
    proxy = [line for line in lines if "Proxy failed" in line or "Proxy stopped" in line]
    if proxy:
        said = proxy[-1][proxy[-1].index("Proxy"):]
        return (f"the proxy did not start ({shorten(said, 120)}): check --proxy (npm ci "
                f"--prefix tools/classroom) and that its ports are free; log: {where}")
    errors = [line for line in lines if (line.startswith(("[E", "[C")) or "Error:" in line)
              and "custom error page" not in line]
    return f"{shorten(errors[-1], 250) if errors else 'no error line'}; log: {where}"


@dataclass
class Server:
    """One user's single-user server, driven with the user's own token."""

    hub: Hub
    user: str
    token: str

    @property
    def prefix(self) -> str:
        return f"/user/{self.user}"

    def api(self, method: str, path: str, timeout: float = 60, **kwargs: Any) -> Any:
        return self.hub.request(method, f"{self.prefix}{path}", self.token, timeout, **kwargs)

    def nbgrader(self, action: str, timeout: float = 300, **args: str) -> dict:
        """An nbgrader action of the assignment list (fetch, submit, fetch_feedback) or the
        formgrader (its API paths); its JSON reply, which must say success."""
        if action in ("fetch", "submit", "fetch_feedback"):
            reply = self.api("POST", f"/assignments/{action}", timeout, data=args)
        else:
            reply = self.api("POST", f"/formgrader/api/{action}", timeout)
        reply = json.loads(reply) if isinstance(reply, str) else reply
        if not reply.get("success", False):
            said = reply.get("value") or reply.get("error") or reply
            raise CheckFailed(f"{self.user}: nbgrader {action} failed: "
                              f"{shorten(str(said), 500)}")
        return reply

    def contents(self, path: str) -> dict:
        return self.api("GET", f"/api/contents/{path}")

    def put_notebook(self, path: str, nb: Any) -> None:
        self.api("PUT", f"/api/contents/{path}", json={"type": "notebook", "format": "json",
                                                       "content": nb})

    def execute(self, code: list[str], path: str = "", timeout: float = 600
                ) -> list[list[dict]]:
        """Run each of ``code`` in a new kernel of this server (its working folder ``path``'s
        folder, as for a notebook there); each one's outputs (nbformat), errors included."""
        import websocket

        session = self.api("POST", "/api/sessions", json={
            "path": path or f"check-{uuid.uuid4().hex}.ipynb", "type": "notebook",
            "name": "", "kernel": {"name": "python3"}})
        kernel = session["kernel"]["id"]
        ws_url = self.hub.url.replace("http", "ws", 1)
        try:
            ws = websocket.create_connection(
                f"{ws_url}{self.prefix}/api/kernels/{kernel}/channels",
                header=[f"Authorization: token {self.token}"], timeout=timeout)
            try:
                return [run_cell(ws, source, timeout) for source in code]
            finally:
                ws.close()
        finally:
            with contextlib.suppress(CheckFailed, OSError):
                self.api("DELETE", f"/api/sessions/{session['id']}")


def run_cell(ws: Any, source: str, timeout: float) -> list[dict]:
    """One execute_request over the kernel's websocket; its outputs once the kernel is idle."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": source, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": False}}))
    outputs, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id or msg["channel"] != "iopub":
            continue
        kind = msg["msg_type"]
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            return outputs
        if kind in ("stream", "display_data", "execute_result", "error"):
            msg["header"]["msg_type"] = kind
            outputs.append(nbformat.v4.output_from_msg(msg))
        elif kind == "clear_output":
            outputs.clear()
    raise CheckFailed(f"a cell ran past {timeout:.0f} s: {shorten(source, 80)}")


def text_of(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
        elif "text/plain" in out.get("data", {}):
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def start_server(hub: Hub, user: str, timeout: float) -> Server:
    """The user's own token (made through the Hub's API) and their server, ready."""
    token = hub.request("POST", f"/hub/api/users/{user}/tokens", json={
        "note": "classroom check", "expires_in": 3600})["token"]
    hub.request("POST", f"/hub/api/users/{user}/server", token)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        model = hub.request("GET", f"/hub/api/users/{user}", token)
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return Server(hub, user, token)
        if not server and not model.get("pending"):
            raise CheckFailed(f"{user}'s server stopped while starting: "
                              f"{hub_problem(hub.log, hub.keep)}")
        time.sleep(1)
    raise CheckFailed(f"{user}'s server was not up within {timeout:.0f} s (the spawner was "
                      f"still waiting for it): look for {user} in the hub's log, or give a "
                      f"slow machine a larger --start-timeout; log: "
                      f"{kept_log(hub.log, hub.keep)}")
