"""A package's public names, imported from their modules on first use (PEP 562).

``__getattr__, __dir__, __all__ = lazy_names(__name__, {"module": ("name", ...)})`` in a
package's ``__init__`` lists each name once, next to the module that defines it; importing
the package itself stays cheap (no TensorFlow until a name that needs it is used).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_names(package: str, homes: Mapping[str, Sequence[str]]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``, whose ``homes`` maps each
    submodule (relative to ``package``, or absolute when it starts with ``nbutils.``) to the
    names it defines."""
    where = {name: module if module.startswith("nbutils.") else f"{package}.{module}"
             for module, names in homes.items() for name in names}
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        namespace[name] = value  # found directly next time
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__, sorted(where)
