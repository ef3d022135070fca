"""Tiny helpers shared by the notebook builders: collect cells, then write the notebook."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CHECK = "# NBVAL_CHECK_OUTPUT\n"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


class Builder:
    """Accumulates markdown and code cells; ``check=True`` marks a cell nbval compares."""

    def __init__(self, filename: str):
        self.path = NOTEBOOKS / filename
        self.cells = []

    def md(self, text: str) -> None:
        self.cells.append(new_markdown_cell(text.strip()))

    def code(self, text: str, check: bool = False) -> None:
        self.cells.append(new_code_cell((CHECK if check else "") + text.strip()))

    def build(self):
        return new_notebook(cells=self.cells, metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        })

    def write(self) -> None:
        nbformat.write(self.build(), self.path)
        print("wrote", self.path, "(no outputs: execute it to store them)")
