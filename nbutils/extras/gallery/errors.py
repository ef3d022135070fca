"""The errors particular to the gallery's optional strategies (ann, milvus)."""


class BackendNotInstalledError(ImportError):
    """The package a backend needs is missing; the message names the extra to install."""


class GalleryConnectionError(ConnectionError):
    """A gallery server could not be reached; the message names its URI."""
