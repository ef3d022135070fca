"""The restricted unpickler that every weight-file reader builds on.

A pickle is a program: unpickling runs whatever callables it names. Weight files only ever
need a handful of globals (a tensor rebuilder, a dict type, a dtype), so a reader lists
exactly those in ``allowed`` and every other global is refused before it is resolved.

The pure-Python unpickler (``pickle._Unpickler``) is the base, because its opcode table can
be extended; the pickles read here are small (the weight data follow them as raw bytes), so
its speed does not matter. On top of refusing globals, a hostile pickle must not be able to
exhaust memory, crash the interpreter or change the reader's own objects:

- it reads from a `BoundedReader`: a length field can never make it allocate more than the
  bytes present, and the pickle opcodes themselves are capped at `MAX_PICKLE_BYTES` (every
  opcode byte costs at most ~100 bytes of Python objects);
- dictionary keys must be strings or numbers: hashing a tuple nested a million deep (one
  byte per level) recurses in C and kills the process; sets are refused outright;
- BUILD (set an object's state) works only on the types a reader lists in ``buildable``:
  otherwise a pickle could set attributes on the allowed classes and functions themselves;
- BYTEARRAY8 is refused: it allocates its declared length before reading.

What weight files hold still passes: dicts keyed by names, lists, tuples, numbers, strings
and the allowed globals.
"""

from __future__ import annotations

import pickle
import reprlib
import struct
from pathlib import Path
from typing import Any, ClassVar

from nbutils._internal.weights.integrity import WeightsError

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
