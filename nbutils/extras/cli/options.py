"""Checks of command-line values shared by the style and face commands, made before any
image or network is loaded.

- `int_option` / `float_option`: argparse ``type=`` converters that refuse NaN, infinities
  and out-of-range numbers; argparse then prints one ``error: argument --x: ...`` line and
  exits with status 2.
- `file_problem` / `folder_problem`: why an output path could not be written, found before
  a long run rather than after it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from nbutils._internal.atomic import folder_write_problem

#: --seed feeds tf.random's stateless ops, which take int64 seeds.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def int_option(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for an int in ``[low, high]`` (``high`` None: no upper bound)."""
    bounds = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    convert.__name__ = "int"  # argparse names the type in some of its own messages
    return convert


def float_option(low: float, high: float | None = None, *,
                 above: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` for a finite float ``>= low`` (``> low`` when ``above``) and
    ``<= high`` (``high`` None: no upper bound)."""
    bounds = f"a finite number {'>' if above else '>='} {low:g}"
    if high is not None:
        bounds += f" and <= {high:g}"

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text!r}") from None
        # NaN fails every comparison, so it is caught by isfinite, not by the range test
        if (not math.isfinite(value) or value < low or (above and value == low)
                or (high is not None and value > high)):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text!r}")
        return value

    convert.__name__ = "float"
    return convert


def folder_problem(folder: Path) -> str | None:
    """Why files could not be written in ``folder`` (created if missing), or None: the
    nearest existing folder is tried by writing a file (`folder_write_problem`), so the
    answer holds for root and for read-only or immutable folders too."""
    return folder_write_problem(folder)


def file_problem(path: Path) -> str | None:
    """Why ``path`` could not be written (created or replaced), or None."""
    if path.is_dir():
        return f"{path} is a folder, not a file name"
    if os.path.lexists(path) and not path.is_file():
        return f"{path} exists and is not a regular file"
    return folder_problem(path.parent)  # a replacement is renamed in: the folder must be writable


def fail(message: str) -> int:
    """Print ``error: <message>`` on stderr; the exit status of a usage error, 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2
