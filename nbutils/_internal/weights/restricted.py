"""The restricted unpickler that every weight-file reader builds on.

A reader lists the few globals its files need in ``allowed``; any other global is refused
before it is resolved. Built on the extensible pure-Python ``pickle._Unpickler``, it also
reads from a `BoundedReader` (no allocation beyond the bytes present, opcodes capped at
`MAX_PICKLE_BYTES`), accepts only string or number dictionary keys, refuses sets and
BYTEARRAY8, and lets BUILD touch only the types in ``buildable``. Why each rule exists:
``docs/design-notes.md``.
"""

from __future__ import annotations

import pickle
import reprlib
import struct
from pathlib import Path
from typing import Any, ClassVar

from nbutils._internal.weights.integrity import WeightsError, check_digest

#: Opcode bytes one weight file may hold (array data excluded). Real ones hold kilobytes.
MAX_PICKLE_BYTES = 4 << 20

#: What the pure-Python unpickler raises on malformed input (a wrong opcode, a short read,
#: an operation on the wrong kind of object...): each becomes a `WeightsError` naming the file.
PICKLE_ERRORS: tuple[type[Exception], ...] = (
    pickle.UnpicklingError, EOFError, struct.error, TypeError, ValueError, KeyError,
    IndexError, AttributeError, OverflowError,
)

#: Keys of dicts: only types whose hash does not recurse.
FLAT_TYPES = (str, int, float, bool, bytes, type(None))

#: The largest integer a size, count, offset or stride may be (NumPy indexes with int64).
MAX_INDEX = 2**63 - 1


class _ShortRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        # repr() of an int over 4300 digits raises ValueError; a pickle can hold one
        return repr(x) if x.bit_length() <= 64 else f"<{x.bit_length()}-bit integer>"


_short = _ShortRepr()
_short.maxlevel, _short.maxstring, _short.maxother = 3, 60, 60


def short_repr(obj: Any) -> str:
    """A bounded ``repr`` of untrusted data for messages (depth 3, ~60 characters a part,
    huge integers by their size)."""
    return _short.repr(obj)


class UnsafePickleError(WeightsError):
    """A pickle asked for a global outside the short list a weight file needs."""


def read_checked(path: Path, sha256: str | None, remedy: str | None, max_bytes: int,
                 what: str) -> bytes:
    """The bytes of ``path`` once its SHA-256 (unless None) and its size are checked."""
    if sha256 is not None:
        check_digest(path, sha256, remedy=remedy)
    size = path.stat().st_size
    if size > max_bytes:
        raise WeightsError(f"{path}: {size} bytes, more than the {max_bytes} {what} "
                           "may have here (pass max_bytes to read a larger one)")
    return path.read_bytes()


class BoundedReader:
    """Bytes read sequentially by an unpickler and by the reader around it.

    ``read``/``readline`` (the unpickler's) never return more than is left, so no length
    field can make them allocate, and together they may return at most ``pickle_limit``
    bytes. `take` hands out raw data (array bytes) as a zero-copy view, not counted.
    """

    def __init__(self, data: bytes, pickle_limit: int = MAX_PICKLE_BYTES):
        self._bytes = data  # searched in place by readline
        self.data = memoryview(data)
        self.pos = 0
        self.pickle_limit = pickle_limit
        self.pickle_bytes = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _count(self, n: int) -> None:
        self.pickle_bytes += n
        if self.pickle_bytes > self.pickle_limit:
            raise pickle.UnpicklingError(
                f"the pickle is longer than the {self.pickle_limit} bytes a weight file needs")

    def read(self, n: int = -1) -> bytes:
        n = self.remaining if n < 0 else min(n, self.remaining)
        self._count(n)
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def readline(self) -> bytes:
        stop = min(len(self.data), self.pos + self.pickle_limit - self.pickle_bytes + 1)
        end = self._bytes.find(b"\n", self.pos, stop)
        return self.read((stop if end < 0 else end + 1) - self.pos)

    def take(self, n: int) -> memoryview:
        """The next ``n`` raw bytes (a view); the caller checks ``n <= remaining`` first."""
        if not 0 <= n <= self.remaining:
            raise ValueError(f"{n} bytes asked, {self.remaining} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def _check_flat(items: Any, what: str) -> None:
    for item in items:
        if not isinstance(item, FLAT_TYPES):
            raise pickle.UnpicklingError(
                f"{what} must be strings or numbers, not {type(item).__name__}")


class RestrictedUnpickler(pickle._Unpickler):
    """Resolves only the globals in ``allowed`` ((module, name) -> object); others raise.

    Subclasses set ``allowed``, ``buildable`` (the types whose instances BUILD may set the
    state of) and ``what`` (the kind of file, for messages).
    """

    allowed: ClassVar[dict[tuple[str, str], Any]] = {}
    buildable: ClassVar[tuple[type, ...]] = ()
    what: ClassVar[str] = "weight file"
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: BoundedReader, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise UnsafePickleError(
                f"{self.path}: the pickle asks for the global '{short_repr(module)[1:-1]}."
                f"{short_repr(name)[1:-1]}', which a {self.what} never needs. Refused: the "
                "file is not loaded (it may be malicious)."
            )
        return self.allowed[(module, name)]

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError(f"{self.path}: unexpected persistent reference in a {self.what}")

    # The opcode table holds plain functions; these route to methods, so that a subclass
    # overrides a method and the table follows.

    def load_build(self) -> None:
        if len(self.stack) < 2:
            raise pickle.UnpicklingError("BUILD with nothing to build")
        inst = self.stack[-2]
        if isinstance(inst, type) or not isinstance(inst, self.buildable):
            raise UnsafePickleError(
                f"{self.path}: the pickle sets the state of a {type(inst).__name__}, which a "
                f"{self.what} never does. Refused: the file is not loaded.")
        super().load_build()

    def load_setitem(self) -> None:
        _check_flat(self.stack[-2:-1], "dictionary keys")
        super().load_setitem()

    # In the pure-Python unpickler, MARK moves the stack onto ``metastack`` and starts an
    # empty one: the items since the mark are the whole current stack.

    def load_setitems(self) -> None:
        _check_flat(self.stack[0::2], "dictionary keys")
        super().load_setitems()

    def load_dict(self) -> None:
        _check_flat(self.stack[0::2], "dictionary keys")
        super().load_dict()

    def load_set(self) -> None:
        # an empty set costs 216 bytes for one opcode byte; weight files never hold sets
        raise pickle.UnpicklingError("a set, which weight files never hold")

    def load_bytearray8(self) -> None:
        raise pickle.UnpicklingError("a bytearray (BYTEARRAY8), which weight files never hold")

    for _op, _method in [(pickle.BUILD, "load_build"), (pickle.SETITEM, "load_setitem"),
                         (pickle.SETITEMS, "load_setitems"), (pickle.DICT, "load_dict"),
                         (pickle.EMPTY_SET, "load_set"), (pickle.ADDITEMS, "load_set"),
                         (pickle.FROZENSET, "load_set"),
                         (pickle.BYTEARRAY8, "load_bytearray8")]:
        dispatch[_op[0]] = (lambda name: lambda self: getattr(self, name)())(_method)
    del _op, _method
