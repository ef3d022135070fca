"""The notebooks' widgets, moved in a real browser: JupyterLab in headless Chromium.

    .venv/bin/python tools/browser_check.py [--out build/browser-check] [--preset ci]
        [--upload IMAGE] [--timeout 2400] [NOTEBOOK.ipynb ...]

Without notebooks it checks every ``notebooks/*.ipynb`` that has a widget cell; a notebook
named here that has none is an error, and so is finding none at all (a check that checked
nothing must not pass). A widget cell is a code cell tagged ``widget`` (jupytext:
``# %% tags=["widget"]``); its output must hold printed text that changes when one of its
controls moves.

1. Each notebook is copied into a temporary folder with the preset's parameters injected, as
   ``tools/notebooks.py prepare --preset ci`` does, its stored outputs cleared (so that
   nothing read later can be a stored output).
2. JupyterLab (this python's, ``python -m jupyter lab``) starts on 127.0.0.1, on a free port,
   with a random token and Jupyter folders of its own in that temporary folder; Playwright
   drives Debian's ``chromium`` (``executable_path``, headless; Playwright's own browser
   download is never used).
3. Per notebook: open it, wait for its kernel, Run > Run All Cells, wait until every code cell
   has run; a cell that fails ends that notebook's check, named by its number.
4. Per widget cell, every control in its output, one at a time: read the cell's printed
   output, move the control (a slider's handle: one key press; a FileUpload: ``--upload``
   through the browser's file chooser; a dropdown: the next option; a checkbox: a click; the
   button of an ``interact_manual`` is pressed after each move), wait until the kernel is idle
   and the printed output has changed and settled, and record both; an image in the output
   that is then blank (one colour: a figure drawn empty) fails it too. A screenshot of each
   widget cell and one of the page go to ``--out``, with ``report.json`` (every text in
   full) and ``browser.log`` (the page's console errors).

Cells are numbered from 1 as in the notebook given (the injected parameters cell is not
counted), as the grader numbers them. One line per control::

    ok   scratch.ipynb cell 4 FloatSlider alpha 1.00 -> 1.50: 'J = 5.00' -> 'J = 7.50'

Every wait has a timeout, and the whole run is bounded by ``--timeout``. JupyterLab, its
kernels and the browser are stopped and the temporary folder removed on every exit, failures
and interrupts included. Exit 0 when every control changed its cell's output, 1 when one did
not or anything failed or timed out (each message names the notebook and the cell), 2 when
the check cannot start (no chromium, no playwright, a notebook that is not there).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from nbutils.lab.exercises import WIDGET_TAG

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # reported by run(): the check cannot start
    PlaywrightError = PlaywrightTimeout = RuntimeError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
INJECTED_TAG = "injected-parameters"  # papermill's, on the cell the preset adds
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
NO_CHROMIUM = ("no chromium: `apt-get install -y chromium` (Debian's; Playwright's own "
               "browser download is not used), or --chromium PATH")
POLL = 0.25  # seconds between two looks at the page
SETTLED = 3  # the same output on this many looks in a row, the kernel idle: settled
OWN_FILES = ("*.png", "report.json", "browser.log", "jupyterlab.log")  # what --out gets
# JupyterLab's user settings for the check: every cell in the page (no windowing, so the
# n-th cell element is the notebook's n-th cell), no news or update pop-up over the page,
# no autosave into the copies.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}
# The state of every cell, the kernel's status as the page shows it, in one call.
PAGE_STATE = """() => ({
    status: document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status ?? '',
    prompts: [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map(
        cell => cell.querySelector('.jp-InputPrompt')?.innerText.trim() ?? ''),
})"""
STDERR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'  # and errors
# Every image in an element decoded, then two frames painted: what a screenshot then shows.
PAINTED = """async el => {
    const images = [...el.querySelectorAll('img')];
    await Promise.race([Promise.all(images.map(i => i.decode().catch(() => null))),
                        new Promise(done => setTimeout(done, 10000))]);
    await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
    return images.every(i => i.complete);
}"""
# What a cell's output shows besides text: its images (count and sizes of their sources).
IMAGES = """cell => [...cell.querySelectorAll('.jp-Cell-outputArea img')].map(
    i => i.src.length).join(',')"""
KERNEL_READY = r"""() => /\| Idle\b/.test(
    document.querySelector('#jp-main-statusbar')?.innerText ?? '')"""


class CheckFailed(Exception):
    """A failure of the check, its message naming the notebook and the cell (``index``:
    that cell in the page, for the screenshot)."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


class NoChange(CheckFailed):
    """A control moved and its cell's output stayed as it was."""


class SetupError(Exception):
    """The check cannot start."""


class RunTimedOut(Exception):
    """The whole run went past --timeout."""


@dataclass(frozen=True)
class WidgetCell:
    index: int  # in the prepared copy (the page's cells)
    number: int  # from 1, in the notebook as given (the injected cell not counted)
    first_line: str


@dataclass
class Result:
    notebook: str
    cell: int
    kind: str
    label: str
    value_before: str = ""
    value_after: str = ""
    text_before: str = ""
    text_after: str = ""
    error: str = ""
    warning: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def line(self) -> str:
        where = f"{self.notebook} cell {self.cell} {self.kind} {self.label}".rstrip()
        if self.error:
            return f"FAIL {where}: {self.error}"
        old, new = first_difference(self.text_before, self.text_after)
        warning = f" (WARNING: {self.warning})" if self.warning else ""
        return (f"ok   {where} {self.value_before} -> {self.value_after}: "
                f"{old!r} -> {new!r}{warning}")


@dataclass
class Deadline:
    """The whole run's time limit: every wait is bounded by what is left of it."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def bound(self, seconds: float) -> float:
        left = self.left()
        if left <= 0:
            raise RunTimedOut(f"the whole check ran past --timeout {self.seconds:.0f} s")
        return min(seconds, left)


def shorten(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def first_difference(before: str, after: str) -> tuple[str, str]:
    """The first line at which two outputs differ (each shortened), for the summary."""
    old, new = before.splitlines(), after.splitlines()
    for i in range(max(len(old), len(new))):
        a = old[i] if i < len(old) else ""
        b = new[i] if i < len(new) else ""
        if a != b:
            return shorten(a), shorten(b)
    return shorten(before), shorten(after)


def widget_cells(nb: Any) -> list[WidgetCell]:
    """The code cells tagged ``widget``, numbered as in the notebook without its injected
    parameters cell."""
    cells, injected = [], 0
    for index, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags:
            injected += 1
        elif cell.cell_type == "code" and WIDGET_TAG in tags:
            lines = [line for line in cell.source.splitlines() if line.strip()]
            cells.append(WidgetCell(index, index + 1 - injected, lines[0] if lines else ""))
    return cells


def prepared_copy(notebook: Path, out: Path, preset: str | None) -> tuple[Path, Any]:
    """``notebook`` written into ``out`` with the preset injected (as ``tools/notebooks.py
    prepare`` does), its outputs cleared, and a kernel to run it with."""
    nb = nbformat.read(notebook, as_version=4)
    if preset:
        from nbutils.lab.parameters import ParametersError, apply_preset, load_preset

        try:
            nb = apply_preset(nb, load_preset(preset))
        except ParametersError as e:
            raise SetupError(f"{notebook.name}: cannot inject the {preset!r} preset: {e}") from e
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)  # stored widget state: the page makes its own
    nb.metadata.pop("jupytext", None)  # no pairing with a .py in the copy
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / notebook.name)
    return out / notebook.name, nb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_tree(proc: subprocess.Popen, grace: float = 15) -> None:
    """Stop ``proc`` (the leader of its own process group) and everything it started,
    kernels included (they run in sessions of their own): SIGTERM, then SIGKILL."""
    import psutil

    try:
        tree = [psutil.Process(proc.pid)]
        tree += tree[0].children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything else left in its group
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@dataclass
class Lab:
    url: str
    token: str
    log: Path

    def api(self, method: str, path: str, timeout: float = 10) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        for kernel in self.api("GET", "/api/kernels"):
            with contextlib.suppress(urllib.error.URLError, OSError):
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=30)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {line}" for line in text[-lines:])


@contextlib.contextmanager
def jupyterlab(work: Path, root: Path, deadline: Deadline, timeout: float) -> Iterator[Lab]:
    """JupyterLab serving ``root`` on 127.0.0.1, with Jupyter folders of its own in ``work``;
    stopped, with its kernels, on leaving."""
    settings = work / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = dict(os.environ,
               JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(work / "lab-workspaces"),
               JUPYTER_CONFIG_DIR=str(work / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(work / "jupyter-runtime"),
               IPYTHONDIR=str(work / "ipython"),
               NBUTILS_OUTPUT_DIR=str(work / "outputs"))
    port, token = free_port(), secrets.token_hex(24)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--ServerApp.allow_root=True")
    log = work / "jupyterlab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=root, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, log)
    try:
        until = time.monotonic() + deadline.bound(timeout)
        while True:
            if proc.poll() is not None:
                raise CheckFailed(f"JupyterLab exited ({proc.returncode}) before it served "
                                  f"a page; its log ends:\n{log_tail(log)}")
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                lab.api("GET", "/api/status", timeout=2)
                break
            if time.monotonic() > until:
                raise CheckFailed(f"JupyterLab did not answer on {lab.url} within "
                                  f"{timeout:.0f} s; its log ends:\n{log_tail(log)}")
            time.sleep(0.5)
        yield lab
    finally:
        with contextlib.suppress(Exception):
            lab.shut_down_kernels()
        stop_process_tree(proc)


# The controls of one cell's output, found in the page (ipywidgets 8's classes), each with
# what moves it. An interact_manual's button is not a control: it is pressed after each move.
FIND_CONTROLS = """cell => {
    const area = cell.querySelector('.jp-Cell-outputArea');
    if (!area) return [];
    const label = el => (el.querySelector(':scope > .widget-label')?.innerText ?? '').trim();
    const found = [];
    area.querySelectorAll('.widget-slider').forEach(el => {
        const handles = el.querySelectorAll('.noUi-handle');
        if (!handles.length) return;
        const h = handles[handles.length - 1];
        found.push({type: 'slider', el, label: label(el),
                    readout: (el.querySelector('.widget-readout')?.innerText ?? '').trim(),
                    now: h.getAttribute('aria-valuenow'), min: h.getAttribute('aria-valuemin'),
                    max: h.getAttribute('aria-valuemax'),
                    vertical: el.classList.contains('widget-vslider'),
                    range: handles.length > 1});
    });
    area.querySelectorAll('.widget-dropdown, .widget-select').forEach(el => {
        const s = el.querySelector('select');
        if (s && s.options.length > 1) found.push({type: 'select', el, label: label(el),
            multiple: s.multiple, readout: s.options[s.selectedIndex]?.text ?? ''});
    });
    area.querySelectorAll('.widget-checkbox').forEach(el => found.push({type: 'checkbox', el,
        label: (el.querySelector('.widget-label-basic')?.innerText || label(el)).trim(),
        readout: String(el.querySelector('input')?.checked)}));
    area.querySelectorAll('.widget-toggle-buttons, .widget-radio').forEach(el => found.push(
        {type: el.classList.contains('widget-radio') ? 'radio' : 'toggles', el,
         label: label(el), readout: (el.querySelector(
            '.mod-active, input:checked')?.parentElement?.innerText ?? '').trim()}));
    area.querySelectorAll('.widget-text, .widget-textarea').forEach(el => {
        if (el.closest('.widget-slider') || el.classList.contains('widget-slider')) return;
        const input = el.querySelector('input, textarea');
        if (input) found.push({type: 'text', el, label: label(el), readout: input.value,
                               number: input.type === 'number'});
    });
    area.querySelectorAll('.widget-upload').forEach(el => found.push({type: 'upload', el,
        label: el.innerText.replace(/\\s*\\(\\d+\\)\\s*$/, '').trim(),
        readout: (el.innerText.match(/\\((\\d+)\\)\\s*$/) ?? ['', '0'])[1] + ' uploaded'}));
    area.querySelectorAll('.widget-button').forEach(el => {
        if (el.classList.contains('widget-upload') || el.closest('.widget-toggle-buttons'))
            return;
        if (!el.closest('.widget-interact')) found.push({type: 'button', el,
            label: el.innerText.trim(), readout: ''});
    });
    found.sort((a, b) => a.el.compareDocumentPosition(b.el)
                         & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1);
    return found.map((c, i) => { c.el.dataset.browserCheck = String(i); delete c.el;
                                 return c; });
}"""
KINDS = {"select": "Dropdown", "checkbox": "Checkbox", "toggles": "ToggleButtons",
         "radio": "RadioButtons", "text": "Text", "upload": "FileUpload", "button": "Button"}


def slider_kind(control: dict) -> str:
    """IntSlider, FloatSlider, FloatLogSlider, SelectionSlider or a range slider, from what
    the page shows: the readout, and the handle's value (a log slider's is the exponent)."""
    readout = control.get("readout", "")
    if control.get("range"):  # "2 - 7": the upper end
        readout = re.split(r"\s[-\u2013]\s", readout)[-1]
    try:
        shown = float(readout)
    except ValueError:
        return "SelectionRangeSlider" if control.get("range") else "SelectionSlider"
    if control.get("range"):
        return "IntRangeSlider" if re.fullmatch(r"[+-]?\d+", readout.strip()) else \
            "FloatRangeSlider"
    def number(key: str) -> float:
        try:
            return float(control.get(key) or "nan")
        except ValueError:
            return float("nan")

    now, low, high = number("now"), number("min"), number("max")
    # Outside the handle's range: that range is the exponent's.
    outside = low == low and high == high and not low - 1e-9 <= shown <= high + 1e-9
    if outside or (abs(now) < 300 and shown != now and abs(shown - 10 ** now) <= 1e-2 * shown):
        return "FloatLogSlider"
    return "IntSlider" if re.fullmatch(r"[+-]?\d+", readout.strip()) else "FloatSlider"


class NotebookPage:
    """One notebook open in JupyterLab, in its own browser page."""

    def __init__(self, page: Any, name: str, nb: Any, deadline: Deadline, args: Any):
        self.page, self.name, self.nb, self.deadline, self.args = page, name, nb, deadline, args
        self.cells = page.locator(".jp-Notebook .jp-Cell")
        self.uploads = 0  # FileUploads given a file so far
        self.blank_dir: Path | None = getattr(args, "out", None)  # where blank images go

    def next_upload(self) -> Path:
        self.uploads += 1
        return self.args.upload[(self.uploads - 1) % len(self.args.upload)]

    def number(self, index: int) -> int:
        injected = sum(INJECTED_TAG in c.get("metadata", {}).get("tags", [])
                       for c in self.nb.cells[:index + 1])
        return index + 1 - injected

    def state(self) -> dict:
        return self.page.evaluate(PAGE_STATE)

    def wait(self, failure: str, seconds: float, condition, error=CheckFailed) -> Any:
        """Poll ``condition()`` until it returns something true (its value), at most
        ``seconds``; then ``error(failure)``, ``{s}`` in it the seconds."""
        until = time.monotonic() + self.deadline.bound(seconds)
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > until:
                raise error(f"{self.name}: " + failure.format(s=f"{seconds:.0f}"))
            self.page.wait_for_timeout(POLL * 1000)

    def open(self, lab: Lab, workspace: str) -> None:
        timeout = self.args.load_timeout
        self.page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{self.name}"
                       f"?token={lab.token}", timeout=self.deadline.bound(timeout) * 1000)
        try:
            self.page.wait_for_function(KERNEL_READY,
                                        timeout=self.deadline.bound(timeout) * 1000)
        except PlaywrightTimeout:
            raise CheckFailed(f"{self.name}: its kernel was not ready within {timeout:.0f} s "
                              "of opening it in JupyterLab") from None
        if self.page.locator("#jp-left-stack").is_visible():  # the notebook, not the file
            # browser, in the screenshots (closed now: a layout change later can leave the
            # outputs' images unpainted in them)
            self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
        shown = self.cells.count()
        if shown != len(self.nb.cells):
            raise CheckFailed(f"{self.name}: JupyterLab shows {shown} cells, the notebook "
                              f"has {len(self.nb.cells)}")

    def run_all(self) -> None:
        """Run > Run All Cells, then wait until every code cell has run (or the run stopped
        at a failing cell: named)."""
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        code = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        last: list[str] = []
        settled = 0

        def finished() -> bool:
            nonlocal last, settled
            state = self.state()
            prompts = [state["prompts"][i] if i < len(state["prompts"]) else "" for i in code]
            if state["status"] == "dead":
                raise CheckFailed(f"{self.name}: the kernel died while running the cells")
            done = (state["status"] == "idle" and not any("*" in p for p in prompts)
                    and any(re.search(r"\d", p) for p in prompts))
            settled = settled + 1 if done and prompts == last else 0
            last = prompts
            return settled >= SETTLED

        try:
            self.wait("Run All Cells did not finish within {s} s", self.args.run_timeout,
                      finished)
        except CheckFailed as e:
            running = [i for i, p in zip(code, last, strict=False) if "*" in p]
            if not running:
                raise
            raise CheckFailed(f"{e}: cell {self.number(running[0])} was still running",
                              running[0]) from None
        for i in code:  # a traceback in an error output: that cell failed
            text = self.output_text(i, STDERR)
            lines = [line for line in text.splitlines() if line.strip()]
            if lines and ("Traceback (most recent call last)" in text
                          or re.match(r"\w*(Error|Exception)\b", lines[-1])):
                error = lines[-1]
                raise CheckFailed(f"{self.name} cell {self.number(i)} failed when run in "
                                  f"JupyterLab: {shorten(error, 200)}", i)
        not_run = [i for i, p in zip(code, last, strict=True) if not re.search(r"\d", p)]
        if not_run:
            raise CheckFailed(f"{self.name} cell {self.number(not_run[0])} did not run "
                              f"(Run All Cells stopped before it)", not_run[0])

    def output_text(self, index: int, selector: str = ".jp-RenderedText") -> str:
        """The text the cell's output shows (printed text, in widget outputs too)."""
        texts = self.cells.nth(index).locator(f".jp-Cell-outputArea {selector}")
        return "\n".join(t.rstrip("\n") for t in texts.all_inner_texts())

    def settled_change(self, index: int, before: str, seconds: float) -> str:
        """The cell's output once it differs from ``before``, the kernel idle and the text
        the same on `SETTLED` looks in a row."""
        last, settled = None, 0

        def changed() -> str | None:
            nonlocal last, settled
            text, status = self.output_text(index), self.state()["status"]
            if status == "dead":
                raise CheckFailed(f"{self.name} cell {self.number(index)}: the kernel died")
            done = status == "idle" and text != before and text.strip()
            seen = (text, self.cells.nth(index).evaluate(IMAGES))  # its images too
            settled = settled + 1 if done and seen == last else 0
            last = seen
            return text if settled >= SETTLED else None

        return self.wait(f"cell {self.number(index)}: its output did not change within {{s}} s",
                         seconds, changed, NoChange)

    def blank_images(self, index: int) -> list[str]:
        """The images in the cell's output that are one colour (a figure drawn empty), as
        "n-th (W x H px)"."""
        from PIL import Image

        blank = []
        sources = self.cells.nth(index).evaluate(
            "c => [...c.querySelectorAll('.jp-Cell-outputArea img')].map(i => i.src)")
        for n, src in enumerate(sources, 1):
            head, _, data = src.partition(",")
            if not head.startswith("data:image/") or not head.endswith(";base64"):
                continue
            try:
                with Image.open(io.BytesIO(base64.b64decode(data))) as image:
                    low, high = image.convert("L").getextrema()
                    size = image.size
            except (OSError, ValueError):
                blank.append(f"image {n} (not decodable)")
                continue
            if high - low < 8:
                blank.append(f"image {n} ({size[0]} x {size[1]} px)")
                if self.blank_dir is not None:  # kept for a person to look at
                    self.blank_dir.mkdir(parents=True, exist_ok=True)
                    stem = f"{Path(self.name).stem}-cell{self.number(index)}-blank{n}"
                    ext = head.removeprefix("data:image/").removesuffix(";base64")
                    (self.blank_dir / f"{stem}.{ext}").write_bytes(base64.b64decode(data))
        return blank

    def idle(self, index: int) -> None:
        self.wait(f"cell {self.number(index)}: the kernel was still busy after {{s}} s",
                  self.args.change_timeout, lambda: self.state()["status"] == "idle")

    def move(self, control: dict, element: Any) -> None:
        """Move one control as a person would."""
        kind = control["type"]
        if kind == "slider":
            handle = element.locator(".noUi-handle").last
            handle.focus()
            up, down = ("ArrowUp", "ArrowDown") if control["vertical"] else (
                "ArrowRight", "ArrowLeft")
            handle.press(down if control["now"] == control["max"] else up)
        elif kind == "select":
            select = element.locator("select")
            options = select.locator("option").all_inner_texts()
            current = control["readout"]
            target = options[(options.index(current) + 1) % len(options)] \
                if current in options else options[-1]
            select.select_option(label=target)
        elif kind == "checkbox":
            element.locator("input").click()
        elif kind in ("toggles", "radio"):
            choices = element.locator("button:not(.mod-active), input:not(:checked)")
            choices.first.click()
        elif kind == "text":
            box = element.locator("input, textarea").first
            if control["number"]:
                box.focus()
                box.press("ArrowUp")
            else:
                box.fill(control["readout"] + " moved")
            box.press("Enter")
        elif kind == "upload":
            with self.page.expect_file_chooser(timeout=10_000) as chooser:
                element.click()
            control["file"] = self.next_upload()
            chooser.value.set_files(str(control["file"]))
        elif kind == "button":
            element.click()

    def check_cell(self, cell: WidgetCell) -> list[Result]:
        element = self.cells.nth(cell.index)
        element.scroll_into_view_if_needed()
        controls = element.evaluate(FIND_CONTROLS)
        if not controls:
            text = self.output_text(cell.index)
            return [Result(self.name, cell.number, "widget", "", error=(
                "no widget control in its output (ipywidgets' JupyterLab extension missing? "
                f"the output reads {shorten(text)!r})"))]
        results = []
        for i, control in enumerate(controls):
            kind = slider_kind(control) if control["type"] == "slider" else KINDS[
                control["type"]]
            result = Result(self.name, cell.number, kind, control["label"] or f"#{i + 1}")
            results.append(result)
            try:
                self.idle(cell.index)
                target = element.locator(f'[data-browser-check="{i}"]')
                target.scroll_into_view_if_needed()
                result.text_before = self.output_text(cell.index)
                result.value_before = control["readout"] or "-"
                self.move(control, target)
                apply = element.locator(".widget-interact .widget-button")
                if control["type"] != "button" and apply.count():
                    apply.first.click()  # interact_manual: run with the moved value
                now = element.evaluate(FIND_CONTROLS)
                result.value_after = (now[i]["readout"] if i < len(now) else "") or "-"
                if control["type"] == "upload":
                    result.value_after += f" ({control['file'].name})"
                result.text_after = self.settled_change(cell.index, result.text_before,
                                                        self.args.change_timeout)
                blank = self.blank_images(cell.index)
                if blank:
                    message = (f"{', '.join(blank)} in it {'is' if len(blank) == 1 else 'are'} "
                               f"blank (one colour) after moving it ({result.value_before} -> "
                               f"{result.value_after})")
                    if self.args.blank_images == "warn":
                        result.warning = message
                    else:
                        result.error = f"its output changed, but {message}"
            except NoChange:
                result.text_after = self.output_text(cell.index)
                result.error = (f"its output did not change within "
                                f"{self.args.change_timeout:.0f} s of moving it "
                                f"({result.value_before} -> {result.value_after}); it still "
                                f"reads {shorten(result.text_after)!r}")
            except CheckFailed as e:
                result.error = str(e).removeprefix(f"{self.name}: ")
            except PlaywrightError as e:
                result.error = f"the browser failed: {shorten(str(e), 300)}"
        return results

    def screenshots(self, cells: list[WidgetCell], out: Path) -> list[Path]:
        stem = Path(self.name).stem
        shots = []
        for cell in cells:
            path = out / f"{stem}-cell{cell.number}.png"
            self.cells.nth(cell.index).evaluate(PAINTED)
            self.cells.nth(cell.index).screenshot(path=path, timeout=30_000)
            shots.append(path)
        # The page, the first widget cell at the top of the notebook's view.
        self.cells.nth(cells[0].index).evaluate("el => el.scrollIntoView({block: 'start'})")
        self.page.locator("body").evaluate(PAINTED)
        self.page.screenshot(path=out / f"{stem}.png")
        return [out / f"{stem}.png", *shots]


def check_notebooks(prepared: list[tuple[Path, Any]], root: Path, work: Path, out: Path,
                    deadline: Deadline, args: Any
                    ) -> tuple[list[Result], list[str], list[str], list[Path]]:
    """Every widget cell of every prepared notebook, in one JupyterLab and one browser."""
    from playwright.sync_api import sync_playwright

    results: list[Result] = []
    failures: list[str] = []
    shots: list[Path] = []
    console: list[str] = []
    with jupyterlab(work, root, deadline, args.server_timeout) as lab, \
            sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=args.chromium,
                                                 headless=True, timeout=60_000)
        except PlaywrightError as e:
            lines = str(e).splitlines()
            why = [line for line in lines if "FATAL" in line] or lines[:1]
            raise CheckFailed(f"{args.chromium} did not start: {shorten(why[0], 300)}") from None
        try:
            for n, (path, nb) in enumerate(prepared):
                name = path.name
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                page.on("console", lambda m, name=name: m.type == "error" and console.append(
                    f"{name}: console: {m.text}"))
                page.on("pageerror", lambda e, name=name: console.append(
                    f"{name}: page error: {e}"))
                notebook = NotebookPage(page, name, nb, deadline, args)
                t0 = time.monotonic()
                try:
                    notebook.open(lab, f"browser-check-{n}")
                    notebook.run_all()
                    print(f"     {name}: all cells ran in JupyterLab "
                          f"({time.monotonic() - t0:.0f} s)", flush=True)
                    cells = widget_cells(nb)
                    for cell in cells:
                        for result in notebook.check_cell(cell):
                            print(result.line(), flush=True)
                            results.append(result)
                    shots += notebook.screenshots(cells, out)
                except (CheckFailed, PlaywrightError) as e:
                    message = str(e) if isinstance(e, CheckFailed) else (
                        f"{name}: the browser failed: {shorten(str(e), 300)}")
                    print(f"FAIL {message}", flush=True)
                    failures.append(message)
                    with contextlib.suppress(PlaywrightError):
                        if getattr(e, "index", None) is not None:  # the cell named in view
                            notebook.cells.nth(e.index).evaluate(
                                "el => el.scrollIntoView({block: 'start'})")
                            page.locator("body").evaluate(PAINTED)
                        page.screenshot(path=out / f"{Path(name).stem}-failed.png")
                        shots.append(out / f"{Path(name).stem}-failed.png")
                finally:
                    with contextlib.suppress(PlaywrightError):
                        page.close()
                    with contextlib.suppress(Exception):
                        lab.shut_down_kernels()  # one notebook's kernel at a time
        finally:
            browser.close()
        if failures:
            shutil.copy(lab.log, out / "jupyterlab.log")
    return results, failures, console, shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/browser_check.py",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every notebooks/*.ipynb with a widget cell")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "browser-check",
                        help="screenshots, report.json, browser.log (default: %(default)s)")
    parser.add_argument("--preset", default="ci", help="injected as make test does "
                        "(default: %(default)s; 'none': the notebook's own parameters)")
    parser.add_argument("--upload", type=Path, action="append",
                        help="a file for the FileUploads, in turn (the n-th FileUpload of a "
                        "notebook gets the n-th, cycling; repeat it for more; default: the "
                        "real photo biden.jpg, then the sample style_mosaic.png, from the "
                        "nbutils cache)")
    parser.add_argument("--blank-images", choices=("fail", "warn"), default="fail",
                        help="an image in a widget cell's output that is one colour after a "
                        "move: fails the check, or only warns (default: %(default)s)")
    parser.add_argument("--chromium", default=shutil.which("chromium"),
                        help="the browser (default: chromium on PATH, Debian's)")
    parser.add_argument("--timeout", type=float, default=2400,
                        help="seconds for the whole check (default: %(default)s)")
    parser.add_argument("--run-timeout", type=float, default=1200,
                        help="seconds for Run All Cells, per notebook (default: %(default)s)")
    parser.add_argument("--change-timeout", type=float, default=180,
                        help="seconds for a cell's output to change after a move "
                        "(default: %(default)s)")
    parser.add_argument("--load-timeout", type=float, default=120,
                        help="seconds to open a notebook and start its kernel "
                        "(default: %(default)s)")
    parser.add_argument("--server-timeout", type=float, default=90,
                        help="seconds for JupyterLab to start (default: %(default)s)")
    args = parser.parse_args(argv)
    deadline = Deadline(args.timeout)
    try:
        return run(args, deadline)
    except SetupError as e:
        print(f"browser check: {e}", file=sys.stderr)
        return 2
    except (CheckFailed, RunTimedOut) as e:
        print(f"browser check FAILED: {e}", file=sys.stderr)
        return 1


def run(args: Any, deadline: Deadline) -> int:
    if not args.chromium or not Path(args.chromium).exists():
        raise SetupError(NO_CHROMIUM)
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise SetupError("playwright is not installed: pip install -r requirements.txt "
                         "-c constraints.txt") from None
    if not args.upload:  # a face photo first (content, face), then a style image
        from nbutils.samples import real_photo_path, sample_image_path

        try:
            args.upload = [real_photo_path("biden"), sample_image_path("style_mosaic")]
        except FileNotFoundError as e:
            raise SetupError(f"no sample image to upload ({e}): python -m nbutils.prepare, "
                             "or --upload FILE") from None
    for path in args.upload:
        if not path.is_file():
            raise SetupError(f"--upload {path}: no such file")
    given = bool(args.notebooks)
    notebooks = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in notebooks:
        if not path.is_file():
            raise SetupError(f"{path}: no such notebook")
    preset = None if args.preset in ("", "none") else args.preset

    args.out.mkdir(parents=True, exist_ok=True)
    for pattern in OWN_FILES:  # what an earlier run left there
        for old in args.out.glob(pattern):
            old.unlink()
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="nbutils-browser-check-"))
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGALRM)}

    def stop(signum, _frame):
        raise RunTimedOut("the whole check ran past --timeout" if signum == signal.SIGALRM
                          else f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(int(args.timeout) + 60)  # the last resort, should a wait not return
    try:
        root = work / "notebooks"
        prepared = []
        for path in notebooks:
            copy, nb = prepared_copy(path, root, preset)
            cells = widget_cells(nb)
            if cells:
                prepared.append((copy, nb))
                print(f"     {path.name}: {len(cells)} widget cell(s): cells "
                      + ", ".join(str(c.number) for c in cells), flush=True)
            elif given:
                raise SetupError(f"{path}: no code cell tagged {WIDGET_TAG!r}")
        if not prepared:
            raise SetupError(f"no code cell tagged {WIDGET_TAG!r} in "
                             + ", ".join(p.name for p in notebooks))
        results, failures, console, shots = check_notebooks(prepared, root, work, args.out,
                                                            deadline, args)
    finally:
        signal.alarm(0)
        for s, handler in previous.items():
            signal.signal(s, handler)
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "browser.log").write_text("".join(f"{line}\n" for line in console))
    (args.out / "report.json").write_text(json.dumps(
        {"results": [asdict(r) | {"ok": r.ok} for r in results], "failures": failures,
         "screenshots": [str(p) for p in shots]}, indent=1) + "\n")
    bad = [r for r in results if not r.ok]
    seconds = time.monotonic() - start
    cells = {(r.notebook, r.cell) for r in results}
    counted = (f"{len(results)} control(s) in {len(cells)} widget cell(s) of "
               f"{len(prepared)} notebook(s)")
    print(f"     screenshots: {', '.join(str(p) for p in shots)}")
    if bad or failures:
        problems = [f"{len(bad)} of {counted} failed"] if bad else []
        problems += [f"{len(failures)} of {len(prepared)} notebook(s) failed"] if failures else []
        print(f"browser check FAILED ({seconds:.0f} s): {'; '.join(problems)}",
              file=sys.stderr)
        for r in bad:
            print(f"  {r.notebook} cell {r.cell} {r.kind} {r.label}: {r.error}",
                  file=sys.stderr)
        for message in failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    warned = sum(bool(r.warning) for r in results)
    print(f"browser check passed ({seconds:.0f} s): each of {counted} changed its cell's "
          f"output in JupyterLab" + (f"; {warned} left a blank image (--blank-images warn)"
                                     if warned else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
