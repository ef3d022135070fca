"""The command lines ``python -m nbutils.style`` and ``python -m nbutils.faces``; their
defaults come from the library's signatures."""
