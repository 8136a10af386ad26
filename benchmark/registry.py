"""The method registry: ``@register_method("name")`` where a method is defined.

Methods in this repository live in ``methods/<name>/`` and register themselves when
``methods`` is imported (every subfolder is imported automatically). Methods from other
installed packages are discovered through the entry-point group ``uad_bench.methods``::

    [project.entry-points."uad_bench.methods"]
    mymethod = "my_package.my_module"      # importing it runs @register_method

so ``python -m benchmark run --methods mymethod,cddpm`` works without touching this
repository.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmark.method import AnomalyMethod

ENTRY_POINT_GROUP = "uad_bench.methods"
log = logging.getLogger(__name__)

_REGISTRY: dict[str, type[AnomalyMethod]] = {}
_discovered = False


class UnknownMethodError(KeyError):
    """Raised for a method name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register_method(name: str) -> Callable[[type[AnomalyMethod]], type[AnomalyMethod]]:
    """Class decorator: register an :class:`~benchmark.method.AnomalyMethod` under ``name``.

    Names are lower-case identifiers; a duplicate name is an error (two methods must never
    silently shadow each other in a leaderboard).
    """
    if not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise ValueError(f"method name must be a lower-case identifier, got {name!r}")

    def decorator(cls: type[AnomalyMethod]) -> type[AnomalyMethod]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"method name {name!r} is registered twice: by {_where(existing)} and by "
                f"{_where(cls)}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def discover() -> None:
    """Import the built-in methods and every entry point of ``uad_bench.methods`` (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    importlib.import_module("methods")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken third-party plug-in must not hide the others
            log.warning("could not load method plug-in %r (%s): %s", ep.name, ep.value, exc)


def list_methods(family: str | None = None) -> list[str]:
    """Names of all registered methods (of one ``family`` if given), sorted."""
    discover()
    return sorted(n for n, cls in _REGISTRY.items() if family is None or cls.family == family)


def get_method(name: str) -> type[AnomalyMethod]:
    """The class registered as ``name``; an unknown name raises with the known names."""
    discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        from .hparams import did_you_mean

        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise UnknownMethodError(f"unknown method {name!r}{did_you_mean(name, _REGISTRY)}; "
                                 f"known methods: {known}") from None


def parse_method_list(text: str) -> list[str]:
    """``"cddpm, pddpm"`` -> ``["cddpm", "pddpm"]``, each checked against the registry."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("--methods is empty; give a comma-separated list, e.g. cddpm,pddpm")
    for name in names:
        get_method(name)
    if len(set(names)) != len(names):
        raise ValueError(f"--methods lists a method twice: {text!r}")
    return names
