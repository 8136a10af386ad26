"""The method registry: ``@register_method("name")`` where a method is defined.

Methods in this repository live in ``methods/<name>/`` and register themselves when
``methods`` is imported (every subfolder is imported automatically). Methods from other
installed packages are discovered through the entry-point group ``uad_bench.methods``::

    [project.entry-points."uad_bench.methods"]
    mymethod = "my_package.my_module"      # importing it runs @register_method

so ``python -m benchmark run --methods mymethod,cddpm`` works without touching this
repository.

:func:`method_cards` describes every method (name, family, paper) from its registration's
source, without importing it (``python -m benchmark list`` answers at once, with no torch):
a registered class that states ``family`` and ``paper`` as literals in its body is read
as it stands; any other is imported to be described.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmark.method import AnomalyMethod

ENTRY_POINT_GROUP = "uad_bench.methods"
BUILTIN = "methods"
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
    importlib.import_module(BUILTIN)
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


# ---------------------------------------------------------------------------- cards
@dataclass(frozen=True)
class MethodCard:
    """What the registry says of a method without building it."""

    name: str
    family: str
    paper: str
    module: str  # the module that registers it


def method_cards() -> list[MethodCard]:
    """Every registered method's card, sorted by name, read from source where it can be
    (see the module doc); a plug-in that fails to load is warned about and left out."""
    cards: dict[str, MethodCard] = {}
    for module, path in [*_builtin_sources(), *_plugin_sources()]:
        found = _read_cards(path, module) if path is not None else []
        if not found:
            found = _imported_cards(module)
        for card in found:
            cards.setdefault(card.name, card)
    return [cards[name] for name in sorted(cards)]


def _builtin_sources() -> list[tuple[str, Path | None]]:
    """(module, file) of every module of methods/<name>/ that mentions register_method."""
    spec = importlib.util.find_spec(BUILTIN)  # a top-level package: not imported
    if spec is None or not spec.submodule_search_locations:
        return []
    out = []
    for root in spec.submodule_search_locations:
        for info in sorted(pkgutil.iter_modules([root]), key=lambda m: m.name):
            if not info.ispkg or info.name.startswith("_"):
                continue
            for path in sorted((Path(root) / info.name).glob("*.py")):
                if "register_method" in path.read_text(errors="replace"):
                    stem = "" if path.stem == "__init__" else f".{path.stem}"
                    out.append((f"{BUILTIN}.{info.name}{stem}", path))
    return out


def _plugin_sources() -> list[tuple[str, Path | None]]:
    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module = ep.value.split(":")[0].strip()
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        origin = getattr(spec, "origin", None)
        out.append((module, Path(origin) if origin and origin.endswith(".py") else None))
    return out


def _read_cards(path: Path, module: str) -> list[MethodCard]:
    """The cards of the classes ``@register_method("name")`` decorates in ``path`` whose
    bodies give ``family`` and ``paper`` as literals; [] if any class does not."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return []
    cards = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        names = [_registered_name(d) for d in node.decorator_list]
        names = [n for n in names if n]
        if not names:
            continue
        attrs = _literal_attributes(node)
        if not isinstance(attrs.get("family"), str) or not isinstance(attrs.get("paper"), str):
            return []
        cards += [MethodCard(n, attrs["family"], attrs["paper"], module) for n in names]
    return cards


def _registered_name(decorator: ast.expr) -> str | None:
    if not (isinstance(decorator, ast.Call) and decorator.args):
        return None
    func = decorator.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    arg = decorator.args[0]
    if called == "register_method" and isinstance(arg, ast.Constant) \
            and isinstance(arg.value, str):
        return arg.value
    return None


def _literal_attributes(node: ast.ClassDef) -> dict[str, object]:
    out = {}
    for stmt in node.body:
        target = value = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        if isinstance(target, ast.Name):
            try:
                out[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return out


def _imported_cards(module: str) -> list[MethodCard]:
    """Import ``module`` (it registers its methods) and describe what it registered."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken plug-in must not hide the others
        log.warning("could not load method module %r: %s", module, exc)
        return []
    return [MethodCard(name, cls.family, cls.paper, cls.__module__)
            for name, cls in _REGISTRY.items()
            if cls.__module__ == module or cls.__module__.startswith(module + ".")]
