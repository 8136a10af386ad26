"""Built-in methods: every subfolder of this package is one method.

Importing this package imports each subfolder, whose ``method.py`` registers itself with
``@register_method``. Adding a method is adding a folder: nothing here changes.
"""
import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.ispkg and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
