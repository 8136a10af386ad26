from . import method  # noqa: F401  (registers the method)
