"""Hyperparameter values checked against a method's typed ``__init__`` arguments.

Values arrive as strings (``--set ae.latent_dim=64``) or as TOML/JSON values (``--config``);
either way they end as the annotated type or as an error naming the key, the expected type
and the value: ``latent_dim = 2.5`` is refused, never truncated or passed on to fail deep
inside a network (nor nan/inf, which pass as floats and fail in training). Closed choices
(``Literal``) are checked with a "did you mean".

    coerce("latent_dim", "64", int)                   -> 64
    coerce("latent_dim", 2.5, int)                    -> HparamError
    coerce("channel_mult", "1,2,2", tuple[int, ...])  -> (1, 2, 2)
"""
from __future__ import annotations

import difflib
import enum
import inspect
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_NONE = ("none", "null")


class HparamError(ValueError):
    """A hyperparameter value that does not fit its annotated type."""


def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def annotations(cls: type) -> dict[str, Any]:
    """The resolved annotations of ``cls.__init__`` ({} where they cannot be resolved)."""
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - a name only imported for type checking, etc.
        return {}


def expected_type(param: inspect.Parameter, hints: dict[str, Any]) -> Any:
    """The type a value of ``param`` must have: its annotation, else its default's type."""
    if param.name in hints:
        return hints[param.name]
    default = param.default
    if default is inspect.Parameter.empty or default is None:
        return Any
    return type(default)


def coerce(key: str, value: Any, tp: Any, default: Any = None) -> Any:
    """``value`` as type ``tp`` (see the module doc); raises :class:`HparamError`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    if origin in (Union, types.UnionType):
        none = value is None or (isinstance(value, str) and value.strip().lower() in _NONE)
        if none and type(None) in args:
            return None
        errors = []
        for arm in (a for a in args if a is not type(None)):
            try:
                return coerce(key, value, arm, default)
            except HparamError as err:
                errors.append(str(err))
        raise HparamError(errors[0] if len(errors) == 1 else
                          f"hyperparameter {key!r}: {value!r} fits none of {_name(tp)}")
    if origin is Literal:
        if value in args:
            return value
        if isinstance(value, str):  # a number choice given on the command line
            for arg in args:
                if not isinstance(arg, str) and str(arg) == value.strip():
                    return arg
        raise HparamError(f"hyperparameter {key!r}: {value!r} is not allowed"
                          f"{did_you_mean(value, args)}; allowed: {', '.join(map(str, args))}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise _wrong(key, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _wrong(key, value, tp)
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                pass
        if number is None:
            raise _wrong(key, value, tp)
        if not math.isfinite(number):  # nan/inf pass a type check and fail deep in training
            raise HparamError(f"hyperparameter {key!r}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise _wrong(key, value, tp)
    if tp in (tuple, list) or origin in (tuple, list):
        return _sequence(key, value, tp, origin or tp, args, default)
    return value  # a type this module does not know: the method checks it


def _sequence(key: str, value: Any, tp: Any, kind: type, args: tuple, default: Any) -> Any:
    if isinstance(value, str):
        items: list[Any] = [v for v in (s.strip() for s in value.split(",")) if v]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _wrong(key, value, tp)
    if args and args[-1] is Ellipsis:
        element_types = [args[0]] * len(items)
    elif args:
        if len(items) != len(args):
            raise HparamError(f"hyperparameter {key!r}: expected {len(args)} values "
                              f"({_name(tp)}), got {value!r}")
        element_types = list(args)
    elif default:  # bare `tuple`: the default's element type
        element_types = [type(default[0])] * len(items)
    else:
        element_types = [Any] * len(items)
    out = [coerce(f"{key}[{i}]", v, t) for i, (v, t) in enumerate(zip(items, element_types))]
    return kind(out)


def _name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _wrong(key: str, value: Any, tp: Any) -> HparamError:
    kind = {int: "an integer", float: "a number", bool: "true or false",
            str: "a string"}.get(tp, _name(tp))
    return HparamError(f"hyperparameter {key!r}: expected {kind}, got {value!r} "
                       f"({type(value).__name__})")


# ---------------------------------------------------------------------------- storing
def plain_hparams(hparams: Any) -> dict[str, Any]:
    """Hyperparameters as plain values (dict/list/tuple of str, int, float, bool, None), which
    ``weights_only`` loading accepts; Lightning's AttributeDict, paths and enums are converted.
    Anything else is an error at save time, not at load time."""
    return {str(k): _plain(v, str(k)) for k, v in dict(hparams).items()}


def _plain(value: Any, key: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value, key)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy/torch scalars
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, key) for v in value)
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{key}.{k}") for k, v in value.items()}
    raise TypeError(f"hyperparameter {key!r} of type {type(value).__name__} cannot be stored "
                    "in a checkpoint that loads safely (plain values only)")
