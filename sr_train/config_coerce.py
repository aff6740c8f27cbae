"""YAML values -> typed, frozen dataclasses: the generic half of config loading (it knows no schema).

:func:`build` makes a dataclass from a mapping: every key must be a field (else the error names the closest
one), required fields must be there, and each value goes through :func:`coerce`, which dispatches on the
*kind* of the field's type (:func:`kind_of`)::

    any       Any                         the value as it is
    union     X | Y, X | None             null if allowed, else the first member that accepts the value
    literal   Literal["a", "b"]           one of the choices (the hint names the closest one)
    tuple     tuple[X, Y] / tuple[X, ...] a YAML list of that length / any length, items coerced
    list      list[X]                     a YAML list, items coerced
    mapping   dict[K, V]                  a YAML mapping, keys and values coerced
    custom    a class with from_yaml_value(value, key)   its own parser (e.g. NetworkConfig)
    dataclass a dataclass                 a YAML mapping, built recursively
    bool/int/float/str                    the scalars, with the YAML 1.1 fixes below
    instance  any other class             an instance of it

Scalars follow what PyYAML gives: ``true``/``false`` only for bool (never 1 or "yes"); an int also from
``5e3`` (PyYAML reads it as a string) or ``5000.0``; a float also from an int or ``1e-4`` (a string again); a
string also from a number (``name: 123``). Range limits go in the field (:func:`ranged`) and cross-field
checks in ``_validate`` of a :class:`Checked` dataclass.

Every error is a one-line :class:`~sr_train.errors.ConfigError` naming the key path. Bad values appear in
messages through :func:`short_repr` only, so a hostile YAML (aliases nesting a billion items) is never
expanded into a message.
"""

from __future__ import annotations

import dataclasses
import difflib
import reprlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from sr_train.errors import ConfigError

MAX_VALUE_CHARS = 80
"""Longest text of a bad value in an error message."""

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = MAX_VALUE_CHARS


def short_repr(value: Any) -> str:
    """``repr(value)`` for error messages, at most :data:`MAX_VALUE_CHARS` long (deep or long values cut)."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


# --------------------------------------------------------------------------------------- declaring fields
class FieldError(ConfigError):
    """A bad value for one field, raised in ``__post_init__``; :func:`build` adds the key path and the file."""

    def __init__(self, key: str, message: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.key = key


def ranged(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
           le: float | None = None, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with an optional numeric range, checked (for every item of a tuple) by :class:`Checked`."""
    meta = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le)) if v is not None}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _check_range(name: str, limits: Mapping[str, float], v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return
    if "ge" in limits and v < limits["ge"]:
        raise FieldError(name, f"must be >= {limits['ge']:g}, got {v!r}")
    if "gt" in limits and v <= limits["gt"]:
        raise FieldError(name, f"must be > {limits['gt']:g}, got {v!r}")
    if "le" in limits and v > limits["le"]:
        raise FieldError(name, f"must be <= {limits['le']:g}, got {v!r}")


class Checked:
    """Mixin for config dataclasses: ``__post_init__`` checks the :func:`ranged` limits, then ``_validate``."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None and f.metadata:
                for v in value if isinstance(value, tuple) else (value,):
                    _check_range(f.name, f.metadata, v)
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks; raise :class:`FieldError`."""


# --------------------------------------------------------------------------------------- key names
def closest_hint(key: str, options: Sequence[str], prefix: str = "") -> str:
    """``Did you mean '<prefix><closest>'?``, or the list of valid keys when none is close."""
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.5)
    if close:
        return f"Did you mean '{prefix}{close[0]}'?"
    return f"Valid keys under '{prefix.rstrip('.') or 'top level'}': {', '.join(options)}." if options else ""


def field_names(tp: Any, value: Any = None) -> list[str] | None:
    """The keys a mapping for ``tp`` may have; None for a free mapping (any key)."""
    if hasattr(tp, "config_keys"):
        return tp.config_keys(value)
    if dataclasses.is_dataclass(tp):
        return [f.name for f in dataclasses.fields(tp) if f.init]
    return None


def field_type(tp: Any, name: str) -> Any:
    """The declared type of field ``name`` of dataclass ``tp`` with ``| None`` removed; None if not known."""
    if hasattr(tp, "config_keys") or not dataclasses.is_dataclass(tp):
        return None
    ftype = typing.get_type_hints(tp).get(name)
    if typing.get_origin(ftype) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ftype) if a is not type(None)]
        return args[0] if len(args) == 1 else ftype
    return ftype


# --------------------------------------------------------------------------------------- coercion
_ORIGIN_KINDS = {typing.Union: "union", types.UnionType: "union", Literal: "literal", tuple: "tuple", list: "list",
                 Sequence: "list", dict: "mapping", Mapping: "mapping"}


def kind_of(tp: Any) -> str:
    """Which rule of :func:`coerce` applies to type ``tp`` (see the module docstring)."""
    if tp is Any:
        return "any"
    origin = typing.get_origin(tp)
    if origin in _ORIGIN_KINDS:
        return _ORIGIN_KINDS[origin]
    if hasattr(tp, "from_yaml_value"):
        return "custom"
    if dataclasses.is_dataclass(tp):
        return "dataclass"
    return tp.__name__ if tp in (bool, int, float, str) else "instance"


def type_name(tp: Any) -> str:
    """How an error message names type ``tp`` (``an integer``, ``a list of 2 numbers``, ``'a' | 'b'``)."""
    kind, args = kind_of(tp), typing.get_args(tp)
    if kind == "literal":
        return " | ".join(repr(a) for a in args)
    if kind == "union":
        return " or ".join("null" if a is type(None) else type_name(a) for a in args)
    if kind == "tuple" and len(args) == 2 and args[1] is Ellipsis:
        return f"a list of {type_name(args[0])}"
    if kind == "tuple":
        return f"a list of {len(args)} {type_name(args[0]) if len(set(args)) == 1 else 'values'}"
    if kind in ("mapping", "dataclass", "custom"):
        return "a mapping"
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(kind, str(tp))


def bad_value(value: Any, tp: Any, key: str) -> ConfigError:
    """``'<key>' must be <type>, got <value>``."""
    return ConfigError(f"'{key}' must be {type_name(tp)}, got {short_repr(value)}")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to type ``tp``.

    Raises:
        ConfigError: naming ``key`` (the dotted key path) and what was expected.
    """
    return _COERCERS[kind_of(tp)](value, tp, key)


def _any(value: Any, tp: Any, key: str) -> Any:
    return value


def _union(value: Any, tp: Any, key: str) -> Any:
    members = typing.get_args(tp)
    if value is None:
        if type(None) in members:
            return None
        raise bad_value(value, tp, key)
    last: ConfigError | None = None
    for member in members:
        if member is type(None):
            continue
        try:
            return coerce(value, member, key)
        except ConfigError as exc:
            last = exc
    raise last or bad_value(value, tp, key)


def _literal(value: Any, tp: Any, key: str) -> Any:
    choices = typing.get_args(tp)
    if value in choices:
        return value
    scalar = isinstance(value, (str, int, float, bool))
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1) if scalar else []
    names = ", ".join(map(str, choices))
    hint = f"Did you mean '{close[0]}'?" if close else f"Choose one of: {names}."
    raise ConfigError(f"'{key}' must be one of {names}, got {short_repr(value)}", hint)


def _tuple(value: Any, tp: Any, key: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise bad_value(value, tp, key)
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    elif len(value) != len(args):
        raise ConfigError(f"'{key}' must have {len(args)} values, got {len(value)}")
    return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))


def _list(value: Any, tp: Any, key: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise bad_value(value, tp, key)
    (item,) = typing.get_args(tp) or (Any,)
    return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]


def _mapping(value: Any, tp: Any, key: str) -> dict:
    if not isinstance(value, Mapping):
        raise bad_value(value, tp, key)
    ktype, vtype = typing.get_args(tp) or (str, Any)
    return {coerce(k, ktype, key): coerce(v, vtype, f"{key}.{k}") for k, v in value.items()}


def _custom(value: Any, tp: Any, key: str) -> Any:
    return tp.from_yaml_value(value, key)


def _dataclass(value: Any, tp: Any, key: str) -> Any:
    if value is None:
        raise ConfigError(f"'{key}' must be a mapping, got null")
    if not isinstance(value, Mapping):
        raise bad_value(value, tp, key)
    return build(tp, value, key)


def _bool(value: Any, tp: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise bad_value(value, tp, key)


def _number(value: Any) -> float | None:
    """A float from a YAML number or numeric string (PyYAML reads ``1e-4`` and ``5e3`` as strings); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _int(value: Any, tp: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _number(value)
    if number is not None and number.is_integer():
        return int(number)
    raise bad_value(value, tp, key)


def _float(value: Any, tp: Any, key: str) -> float:
    number = _number(value)
    if number is None:
        raise bad_value(value, tp, key)
    return number


def _str(value: Any, tp: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise bad_value(value, tp, key)


def _instance(value: Any, tp: Any, key: str) -> Any:
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise bad_value(value, tp, key)


_COERCERS: dict[str, Callable[[Any, Any, str], Any]] = {
    "any": _any, "union": _union, "literal": _literal, "tuple": _tuple, "list": _list, "mapping": _mapping,
    "custom": _custom, "dataclass": _dataclass, "bool": _bool, "int": _int, "float": _float, "str": _str,
    "instance": _instance,
}


# --------------------------------------------------------------------------------------- dataclasses
def build(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, validating every key; ``where`` is the key path of ``data``.

    Raises:
        ConfigError: an unknown key (with the closest valid one), a missing required key, a bad value, or a
            failed check of the dataclass itself, each naming the key path.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"'{where or 'top level'}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    names = [f.name for f in fields]
    prefix = f"{where}." if where else ""
    kwargs: dict[str, Any] = {}
    for k, v in data.items():
        if k not in names:
            raise ConfigError(f"unknown key '{prefix}{k}'", closest_hint(str(k), names, prefix))
        kwargs[k] = coerce(v, hints[k], prefix + k)
    for f in fields:
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"required key '{prefix}{f.name}' is missing", f"Add '{prefix}{f.name}'.")
    try:
        return cls(**kwargs)
    except FieldError as exc:
        raise ConfigError(f"'{prefix}{exc.key}' {exc.message}", exc.hint) from None
    except ConfigError as exc:
        msg = exc.message if not where or where in exc.message else f"{where}: {exc.message}"
        raise ConfigError(msg, exc.hint) from None
    except (ValueError, TypeError) as exc:  # the checks of plain dataclasses (DataConfig, DegradationConfig)
        raise ConfigError(f"{where or 'config'}: {exc}") from None


def to_plain(obj: Any) -> Any:
    """The YAML-safe form of a built config (dataclasses become mappings, tuples lists); :func:`build` inverts it."""
    if hasattr(obj, "to_yaml_value"):
        return obj.to_yaml_value()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj
