"""The restricted unpickler that every weight-file reader builds on.

A pickle is a program: unpickling runs whatever callables it names. Weight files only ever
need a handful of globals (a tensor rebuilder, a dict type, a dtype), so a reader lists
exactly those in ``allowed`` and every other global is refused before it is resolved.

The pure-Python unpickler (``pickle._Unpickler``) is the base, because its opcode table can
be extended (the joblib reader hooks BUILD); the pickles read here are small (the weight
data follow them as raw bytes), so its speed does not matter.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

from nbutils.weights.integrity import WeightsError


class UnsafePickleError(WeightsError):
    """A pickle asked for a global outside the short list a weight file needs."""


class RestrictedUnpickler(pickle._Unpickler):
    """Resolves only the globals in ``allowed`` ((module, name) -> object); others raise.

    Subclasses set ``allowed`` and ``what`` (the kind of file, for messages).
    """

    allowed: ClassVar[dict[tuple[str, str], Any]] = {}
    what: ClassVar[str] = "weight file"

    def __init__(self, file: io.BufferedIOBase | io.BytesIO, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise UnsafePickleError(
                f"{self.path}: the pickle asks for the global '{module}.{name}', which a "
                f"{self.what} never needs. Refused: the file is not loaded (it may be "
                "malicious)."
            )
        return self.allowed[(module, name)]

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError(f"{self.path}: unexpected persistent reference in a {self.what}")
