"""Reading an ``.npz`` file that may be hostile, every size bounded first: `read_npz`.

Before anything is inflated or allocated:

    file size, each member inflated, all members inflated     <= max_bytes
    zip central directory (the ZIP64 record's, if any)        <= MAX_DIRECTORY_BYTES
    .npy header: shape x itemsize                             <= max_bytes
    .npy header length + shape x itemsize                     == the member inflated

so a zip bomb, a huge directory or a lying header is refused after a few KiB. Members are
uniquely named, stored or deflated ``.npy`` (1.0 or 2.0) of the caller's dtype kinds, never
objects; a truncated or damaged member (its CRC-32) is an error, never a short array.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

#: zipfile parses the whole central directory on opening, ~500 bytes of Python objects per
#: ~50-byte entry: bounded first (1 MiB, ~20,000 entries; an .npz holds tens).
MAX_DIRECTORY_BYTES = 1 << 20
_CHUNK = 1 << 20
_EOCD, _ZIP64_LOCATOR, _ZIP64_RECORD = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_EOCD_SEARCH = 22 + 0xFFFF  # zipfile looks for the last record this close to the end


class NpzError(ValueError):
    """Why an ``.npz`` was not read; ``member`` names the array at fault (None: the archive)."""

    def __init__(self, reason: str, member: str | None = None) -> None:
        super().__init__(reason)
        self.member = member


class NpzTooLarge(NpzError):
    """A size past ``limit``, the caller's max_bytes; ``what`` says which ("N bytes")."""

    def __init__(self, what: str, limit: int, member: str | None = None) -> None:
        super().__init__(f"{what}, more than the {limit} bytes allowed", member)
        self.what, self.limit = what, limit


def read_npz(path: str | os.PathLike, max_bytes: int,
             kinds: str = "biufc") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` by name, each writable and C-ordered, sizes bounded first;
    ``kinds`` are the `numpy.dtype.kind` letters allowed (default: plain numbers).

    Raises:
        NpzTooLarge: a size past ``max_bytes``. NpzError: anything else wrong in the file.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise NpzTooLarge(f"{size} bytes", max_bytes)
    _check_directory(path, size)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_members(infos, max_bytes)
            return {info.filename[:-4]: _read_member(archive, info, max_bytes, kinds)
                    for info in infos}
    except NpzError:
        raise
    except Exception as err:  # BadZipFile, EOFError, struct.error...: a damaged archive
        raise NpzError(f"{type(err).__name__}: {err}") from err


def _check_directory(path: Path, size: int) -> None:
    """Bound the central directory's size as zipfile reads it: from the last end-of-directory
    record near the end, or from the ZIP64 record zipfile expects just before it."""
    start = max(0, size - _EOCD_SEARCH - 76)  # 76: the ZIP64 record (56) and locator (20)
    with open(path, "rb") as f:
        f.seek(start)
        tail = f.read()
    at = tail.rfind(_EOCD, max(0, len(tail) - _EOCD_SEARCH))
    if at < 0 or at + 22 > len(tail):
        raise NpzError("not a zip archive (no end-of-directory record)")
    zip64 = tail[at - 76:at - 20] if at >= 76 else b""
    directory = (int.from_bytes(zip64[40:48], "little") if zip64[:4] == _ZIP64_RECORD
                 and tail[at - 20:at - 16] == _ZIP64_LOCATOR
                 else int.from_bytes(tail[at + 12:at + 16], "little"))
    if directory > MAX_DIRECTORY_BYTES:
        raise NpzError(f"its zip directory claims {directory} bytes, more than the "
                       f"{MAX_DIRECTORY_BYTES} an .npz needs")


def _check_members(infos: list[zipfile.ZipInfo], max_bytes: int) -> None:
    """Names, methods and inflated sizes from the directory, before any member is opened."""
    names = [info.filename for info in infos]
    if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
        raise NpzError("its members are not uniquely named .npy arrays")
    for info in infos:
        name = info.filename[:-4]
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED,
                                                              zipfile.ZIP_DEFLATED):
            raise NpzError(f"array {name!r} is encrypted or compressed with an unexpected "
                           "method", name)
        # zipfile inflates a member to its declared size at most: zip bombs stop here
        if info.file_size > max_bytes:
            raise NpzTooLarge(f"array {name!r} would inflate to {info.file_size} bytes",
                              max_bytes, name)
    declared = sum(info.file_size for info in infos)
    if declared > max_bytes:
        raise NpzTooLarge(f"its arrays would inflate to {declared} bytes in all", max_bytes)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int,
                 kinds: str) -> np.ndarray:
    """One ``.npy`` member: its header must describe exactly the bytes the zip says it holds."""
    name = info.filename[:-4]
    try:
        with archive.open(info) as member:
            shape, fortran, dtype = _read_header(member, name, kinds)
            nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
            if nbytes > max_bytes:
                raise NpzTooLarge(f"array {name!r} declares shape {shape} of {dtype} "
                                  f"({nbytes} bytes)", max_bytes, name)
            held = info.file_size - member.tell()
            if nbytes != held:
                raise NpzError(f"array {name!r} is corrupt: its header declares {nbytes} "
                               f"bytes of data but the archive holds {held}", name)
            data = np.empty(nbytes, np.uint8)
            view, got = memoryview(data), 0
            while got < nbytes and (n := member.readinto(view[got:got + _CHUNK])):
                got += n  # the read reaching the member's end checks its CRC-32
            if got < nbytes:
                raise NpzError(f"array {name!r} is truncated: {got} of {nbytes} bytes", name)
    except NpzError:
        raise
    except Exception as err:  # a damaged header, deflate stream or CRC
        raise NpzError(f"array {name!r} is unreadable: {type(err).__name__}: {err}",
                       name) from err
    array = data.view(dtype).reshape(shape[::-1] if fortran else shape)
    return np.ascontiguousarray(array.T) if fortran else array  # Fortran order: one copy


def _read_header(member: IO[bytes], name: str,
                 kinds: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of an ``.npy`` header, refused unless plain data."""
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):  # 3.0 only adds utf-8 field names: never plain data
        raise NpzError(f"array {name!r}: unsupported .npy format version {version}", name)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(member)  # itself bounds the header (10,000 bytes)
    if dtype.hasobject:
        raise NpzError(f"array {name!r} holds pickled Python objects; refusing to load it "
                       "(allow_pickle=False)", name)
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None \
            or dtype.itemsize == 0 or any(n < 0 for n in shape):
        raise NpzError(f"array {name!r}: unexpected array {dtype} {shape}", name)
    return shape, fortran, dtype
