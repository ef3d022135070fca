"""The notebooks from their plain-text sources (``notebooks/*.py``, jupytext percent format).

    python tools/notebooks.py run [NAME.py ...]        # make notebooks
    python tools/notebooks.py prepare [--preset ci] OUT [NAME.ipynb ...]   # make nbval

``run`` rebuilds each ``.ipynb`` from its ``.py`` and executes it at the notebook's own
defaults (the working directory is ``notebooks/``), storing the outputs: no per-cell
timestamps, and no TensorFlow start-up log (the kernel leaves what C++ libraries write to
its file descriptors on the terminal instead of copying it into the notebook).

``prepare`` writes each stored notebook, with its outputs, to ``OUT`` with the preset's
values injected after its parameters cell (papermill's ``--prepare-only``), for nbval to
run and compare.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

from nbutils.lab.parameters import apply_preset, load_preset

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# ipykernel copies fd 1 and 2 into the notebook by default: that is where TensorFlow's
# absl and oneDNN start-up lines would come from.
KERNEL_ARGUMENTS = ["--IPKernelApp.capture_fd_output=False"]


def run(source: Path) -> Path:
    """Rebuild ``<source>.ipynb`` from ``source`` (.py) and execute it at its defaults."""
    nb = jupytext.read(source)
    NotebookClient(nb, timeout=None, kernel_name="python3", record_timing=False,
                   extra_arguments=KERNEL_ARGUMENTS,
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    target = source.with_suffix(".ipynb")
    jupytext.write(nb, target)
    return target


def prepare(notebook: Path, out: Path, preset: str) -> Path:
    nb = apply_preset(nbformat.read(notebook, as_version=4), load_preset(preset))
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / notebook.name)
    return out / notebook.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/notebooks.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="rebuild and execute at the defaults")
    run_parser.add_argument("sources", nargs="*", type=Path)
    prepare_parser = sub.add_parser("prepare", help="inject a preset for nbval")
    prepare_parser.add_argument("out", type=Path)
    prepare_parser.add_argument("notebooks", nargs="*", type=Path)
    prepare_parser.add_argument("--preset", default="ci")
    args = parser.parse_args(argv)
    if args.command == "run":
        for source in args.sources or sorted(NOTEBOOKS.glob("*.py")):
            print("executed", run(source), flush=True)
    else:
        for notebook in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
            print("prepared", prepare(notebook, args.out, args.preset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
