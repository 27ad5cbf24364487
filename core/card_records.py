"""Typed JSON objects for the model card: dataclass fields are the JSON keys, checked on the way in.

``decode`` turns a parsed JSON object into a ``Record`` subclass, checking every field against its type hint (str,
int, float, bool, ``X | None``, ``tuple[X, ...]``, ``dict[str, X]``, nested records and unions of records) and
raising ModelPackageError naming the key (``architecture.finetune.labels``); keys the class does not know go to
``extra``. ``Record.to_json`` writes the fields back (``opt()`` fields only when set; ``key_order`` first), then
``extra``, so a card is written with the keys, values and order it was read with.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

from core.errors import ModelPackageError

_OMIT_NONE = "omit_none"


def opt() -> Any:
    """A field written only when set (None: the key is left out, as its builders always did)."""
    return field(default=None, metadata={_OMIT_NONE: True})


@dataclass(frozen=True, kw_only=True)
class Record:
    """A JSON object of the card with typed fields; ``extra`` keeps the keys this version does not know."""

    extra: dict[str, Any] = field(default_factory=dict)
    # Keys written first, in this order (the order the builders wrote them); other fields follow in class order.
    json_order: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON object: known fields in ``key_order``, then ``extra``."""
        return _encode(self)

    def key_order(self) -> tuple[str, ...]:
        """Keys written first, in this order; the other fields follow in class order."""
        return self.json_order


_EXPECTED = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}


@cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def decode(kind: type, data: Any, key: str, where: str) -> Any:
    """``data``, the JSON object at ``key`` of the card read from ``where``, as a ``kind`` record."""
    if not isinstance(data, dict):
        raise ModelPackageError(f"{where}: '{key}' in the model card must be an object ({type(data).__name__})")
    hints = _hints(kind)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(kind):
        if item.name == "extra":
            continue
        if item.name in data:
            values[item.name] = _value(hints[item.name], data[item.name], f"{key}.{item.name}", where)
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            raise ModelPackageError(f"{where}: model card has no '{key}.{item.name}'")
    extra = {name: value for name, value in data.items() if name not in values}
    return kind(**values, extra=extra)


def _wrong(key: str, value: Any, expected: str, where: str) -> ModelPackageError:
    return ModelPackageError(
        f"{where}: '{key}' in the model card has the wrong type ({type(value).__name__}; expected {expected})"
    )


def _value(hint: Any, value: Any, key: str, where: str) -> Any:
    """``value`` checked against type hint ``hint`` (lists become tuples, objects records)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _union(tuple(a for a in args if a is not type(None)), value, key, where)
    if dataclasses.is_dataclass(hint):
        return decode(hint, value, key, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise _wrong(key, value, "a list", where)
        return tuple(_value(args[0], v, f"{key}[{i}]", where) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(key, value, "an object", where)
        return {str(k): _value(args[1], v, f"{key}.{k}", where) for k, v in value.items()}
    accepted = (int, float) if hint is float else hint
    if not isinstance(value, accepted) or (hint is not bool and isinstance(value, bool)):
        raise _wrong(key, value, _EXPECTED[hint], where)
    return value  # as written (an int stays an int where a number is expected), so the JSON round-trips


def _union(options: tuple[Any, ...], value: Any, key: str, where: str) -> Any:
    """The first of ``options`` that ``value`` fits (records: by their keys and types)."""
    if len(options) == 1:
        return _value(options[0], value, key, where)
    errors = []
    for option in options:
        try:
            return _value(option, value, key, where)
        except ModelPackageError as exc:
            errors.append(str(exc).removeprefix(f"{where}: "))
    raise ModelPackageError(f"{where}: '{key}' in the model card matches none of its forms ({'; '.join(errors)})")


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        out = {}
        items = [f for f in dataclasses.fields(value) if f.name != "extra"]
        order = {name: i for i, name in enumerate(value.key_order())}
        for item in sorted(items, key=lambda f: order.get(f.name, len(order))):  # stable: the rest in class order
            content = getattr(value, item.name)
            if content is None and item.metadata.get(_OMIT_NONE):
                continue
            out[item.name] = _encode(content)
        out.update({name: content for name, content in value.extra.items() if name not in out})
        return out
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {name: _encode(v) for name, v in value.items()}
    return value
