"""Internals no learner needs to open: weight files (registry, fetch, bounded readers that
never run an unrestricted unpickler), dlib's model file format, the bounded ``.npz``
reader, atomic writes, figures pyplot never holds (for widget callbacks), and the lazy
name tables of the packages' ``__init__``."""
