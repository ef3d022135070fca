"""tools/browser_check.py: which cells it checks and how it names them (here, always), and,
with NBUTILS_BROWSER_TESTS=1 (``make browser-check`` sets it), the check itself on scratch
notebooks in JupyterLab and headless Chromium: a slider of each kind, a dropdown, a checkbox
and a FileUpload change their output, a slider that changes nothing fails the check by its
cell, so does one whose figure is then blank, and nothing is left running or on disk."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

TOOL = Path(__file__).resolve().parent.parent / "tools" / "browser_check.py"
spec = importlib.util.spec_from_file_location("browser_check", TOOL)
browser_check = importlib.util.module_from_spec(spec)
sys.modules["browser_check"] = browser_check  # for its dataclasses
spec.loader.exec_module(browser_check)

WIDGET = {"tags": ["widget"]}
SLIDERS = '''\
@interact(alpha=widgets.FloatSlider(value=1.0, min=0.0, max=10.0, step=0.5, description="alpha"),
          steps=widgets.IntSlider(value=SCRATCH_STEPS, min=1, max=20, description="steps",
                                  continuous_update=False))
def cost(alpha, steps):
    print(f"J = {alpha * steps:.2f} (alpha {alpha}, steps {steps})")
'''
UPLOAD = '''\
upload = widgets.FileUpload(accept="image/*", description="Your photo")
shown = widgets.Output()

def on_upload(change):
    shown.clear_output()
    with shown:
        for f in change["new"]:
            print(f"uploaded {f['name']}: {len(f['content'])} bytes")

upload.observe(on_upload, names="value")
with shown:
    print("no photo uploaded yet")
display(upload, shown)
'''
CHOICES = '''\
@interact(layer=widgets.Dropdown(options=["conv1", "conv2"], description="layer"),
          tv=widgets.Checkbox(value=False, description="TV"),
          weight=widgets.FloatLogSlider(value=1e-2, min=-4, max=0, description="weight"))
def pick(layer, tv, weight):
    print(f"layer {layer}, TV {tv}, weight {weight:.4g}")
'''
NOOP = '''\
noop = widgets.FloatSlider(value=0.5, description="noop")
print("this never changes")
display(noop)
'''
BLANK = '''\
import matplotlib.pyplot as plt

@interact(t=widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1, description="t"))
def drawn_empty(t):
    print(f"t = {t:.1f}")
    fig, ax = plt.subplots(figsize=(3, 2))
    if t == 0.5:
        ax.plot([0, 1], [0, t])
    else:
        ax.axis("off")  # a figure drawn empty: one colour
    plt.show()
'''


def scratch_notebook(path: Path, *extra: str) -> Path:
    """A small notebook with widget cells (its parameters cell first, as the course's)."""
    cells = [new_markdown_cell("# Scratch"),
             new_code_cell("SCRATCH_STEPS = 5", metadata={"tags": ["parameters"]}),
             new_code_cell("import ipywidgets as widgets\nfrom ipywidgets import interact"),
             new_code_cell(SLIDERS, metadata=WIDGET), new_code_cell(UPLOAD, metadata=WIDGET),
             new_code_cell(CHOICES, metadata=WIDGET),
             *(new_code_cell(source, metadata=WIDGET) for source in extra)]
    nb = new_notebook(cells=cells)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="J = 5.00 (stored)\n")]
    nbformat.write(nb, path)
    return path


def test_widget_cells_are_numbered_as_in_the_notebook_given(tmp_path):
    path = scratch_notebook(tmp_path / "scratch.ipynb")
    copy, nb = browser_check.prepared_copy(path, tmp_path / "out", "ci")
    assert "injected-parameters" in nb.cells[2].metadata.tags  # after the parameters cell
    cells = browser_check.widget_cells(nb)
    assert [(c.index, c.number) for c in cells] == [(4, 4), (5, 5), (6, 6)]
    assert cells[0].first_line.startswith("@interact(alpha=")
    assert nbformat.read(copy, as_version=4).cells[4].outputs == []  # nothing stored is read
    assert nb.metadata.kernelspec.name == "python3"


def test_a_notebook_without_parameters_cell_needs_preset_none(tmp_path):
    path = tmp_path / "plain.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("print(1)", metadata=WIDGET)]), path)
    with pytest.raises(browser_check.SetupError, match="plain.ipynb: cannot inject"):
        browser_check.prepared_copy(path, tmp_path / "out", "ci")
    _, nb = browser_check.prepared_copy(path, tmp_path / "out", None)
    assert [c.number for c in browser_check.widget_cells(nb)] == [1]


def test_the_summary_shows_the_first_line_that_changed():
    assert browser_check.first_difference("a\nJ = 1\n", "a\nJ = 2\nmore") == ("J = 1", "J = 2")
    assert browser_check.first_difference("", "x") == ("", "x")
    result = browser_check.Result("n.ipynb", 4, "FloatSlider", "alpha", "1.00", "1.50",
                                  "J = 5.00", "J = 7.50")
    assert result.line() == "ok   n.ipynb cell 4 FloatSlider alpha 1.00 -> 1.50: " \
        "'J = 5.00' -> 'J = 7.50'"


@pytest.mark.parametrize("control, kind", [
    ({"readout": "1.00", "now": "1.0"}, "FloatSlider"),
    ({"readout": "5", "now": "5.0"}, "IntSlider"),
    ({"readout": "0.0100", "now": "-2.0", "min": "-4.0", "max": "0.0"}, "FloatLogSlider"),
    ({"readout": "40.0", "now": "1.5", "min": "-1.0", "max": "4.0"}, "FloatLogSlider"),
    ({"readout": "1.00", "now": "0.0", "min": "-1.0", "max": "4.0"}, "FloatLogSlider"),
    ({"readout": "3.0", "now": "3.0", "min": "-1.0", "max": "4.0"}, "FloatSlider"),
    ({"readout": "conv2", "now": "1"}, "SelectionSlider"),
    ({"readout": "-0.50", "now": "-0.5"}, "FloatSlider"),
    ({"readout": "2 - 7", "now": "7", "range": True}, "IntRangeSlider"),
    ({"readout": "-1.0 - 2.5", "now": "2.5", "range": True}, "FloatRangeSlider")])
def test_slider_kinds_from_the_page(control, kind):
    assert browser_check.slider_kind(control) == kind


def test_no_widget_cell_is_an_error_not_a_pass(tmp_path, capsys):
    path = tmp_path / "none.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), path)
    assert browser_check.main(["--preset", "none", "--out", str(tmp_path / "o"),
                               "--chromium", sys.executable, str(path)]) == 2
    assert "none.ipynb: no code cell tagged 'widget'" in capsys.readouterr().err


browser = pytest.mark.skipif(
    os.environ.get("NBUTILS_BROWSER_TESTS") != "1" or not shutil.which("chromium"),
    reason="JupyterLab in Chromium: make browser-check runs these (NBUTILS_BROWSER_TESTS=1)")


def run_check(tmp_path: Path, notebook: Path) -> tuple[subprocess.CompletedProcess, Path]:
    # The TMPDIR of the check and of all it starts; short: Chromium's socket path in it
    # must fit in 108 bytes.
    temp = Path(tempfile.mkdtemp(prefix="bc-test-"))
    out = tmp_path / "shots"
    try:
        run = subprocess.run([sys.executable, str(TOOL), "--out", str(out),
                              "--change-timeout", "20", "--timeout", "300", str(notebook)],
                             capture_output=True, text=True, timeout=400,
                             env=dict(os.environ, TMPDIR=str(temp)))
        print(run.stdout, run.stderr)
        assert list(temp.iterdir()) == []  # its temporary folder, the browser's profile: gone
        assert started_under(temp) == []  # no JupyterLab, kernel, driver or browser left
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return run, out


def started_under(temp: Path) -> list[str]:
    """The live processes whose environment has TMPDIR=temp."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and \
                    p.environ().get("TMPDIR") == str(temp):
                found.append(" ".join(p.info["cmdline"] or []))
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            pass
    return found


@browser
def test_every_control_changes_its_output_in_jupyterlab(tmp_path):
    run, out = run_check(tmp_path, scratch_notebook(tmp_path / "scratch.ipynb"))
    assert run.returncode == 0
    lines = [line for line in run.stdout.splitlines() if line.startswith("ok ")]
    assert [line.split(":")[0].split(" cell ")[1] for line in lines] == [
        "4 FloatSlider alpha 1.00 -> 1.50", "4 IntSlider steps 5 -> 6",
        "5 FileUpload Your photo 0 uploaded -> 1 uploaded (biden.jpg)",
        "6 Dropdown layer conv1 -> conv2", "6 Checkbox TV false -> true",
        "6 FloatLogSlider weight 0.0100 -> 0.0126"]
    assert "'J = 5.00 (alpha 1.0, steps 5)' -> 'J = 7.50 (alpha 1.5, steps 5)'" in lines[0]
    assert "'no photo uploaded yet' -> 'uploaded biden.jpg: " in lines[2]
    assert "browser check passed" in run.stdout
    assert {p.name for p in out.glob("*.png")} == {
        "scratch.png", "scratch-cell4.png", "scratch-cell5.png", "scratch-cell6.png"}
    report = json.loads((out / "report.json").read_text())
    assert [r["ok"] for r in report["results"]] == [True] * 6


@browser
def test_a_control_that_changes_nothing_or_draws_nothing_fails_by_its_cell(tmp_path):
    run, out = run_check(tmp_path, scratch_notebook(tmp_path / "noop.ipynb", NOOP, BLANK))
    assert run.returncode == 1
    assert "FAIL noop.ipynb cell 7 FloatSlider noop: its output did not change within 20 s " \
        "of moving it (0.50 -> 0.60); it still reads 'this never changes'" in run.stdout
    assert "FAIL noop.ipynb cell 8 FloatSlider t: its output changed, but image 1 (" \
        in run.stdout and ") in it is blank (one colour) after moving it (0.50 -> 0.60)" \
        in run.stdout
    assert "browser check FAILED" in run.stderr and "2 of 8 control(s)" in run.stderr
    assert (out / "noop-cell7.png").is_file()


@browser
def test_a_failing_cell_is_named(tmp_path):
    path = scratch_notebook(tmp_path / "broken.ipynb")
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(3, new_code_cell("raise ValueError('broken on purpose')"))
    nbformat.write(nb, path)
    run, _ = run_check(tmp_path, path)
    assert run.returncode == 1
    assert "broken.ipynb cell 4 failed when run in JupyterLab: ValueError: broken on purpose" \
        in run.stderr
