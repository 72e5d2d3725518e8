"""The compiled schema loader: `schema.load` for valid broker bodies without marshmallow's per-field machinery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, ValidationError, missing

from app.wire.fields import LenientField

_MISSING = object()


def compile_loader(schema: Schema) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`schema.load` for valid input at a fraction of its cost; anything unusual goes to `schema.load`.

    Built once per schema. It only applies to schemas made of app/wire/fields.py's lenient fields with
    no hooks and no validators (else it is `schema.load` itself); the first missing required field, null
    or invalid value hands the whole input to `schema.load`, so errors (and their messages) are
    marshmallow's. Measured on the 21-field Kite schema: 56 -> 15 us per load (timeit, this machine).
    """
    plan = []
    if any(schema._hooks.values()):  # pre_load and friends: only marshmallow knows the order they run in
        return schema.load
    for name, field in schema.load_fields.items():
        if (
            not isinstance(field, LenientField)
            or field.validators
            or field.pre_load
            or field.post_load
            or callable(field.load_default)
        ):
            return schema.load
        key = field.data_key if field.data_key is not None else name
        attr = field.attribute or name
        default = None if field.load_default is missing else field.load_default
        plan.append((key, attr, field.convert, field.required, field.allow_none, default))

    def load(data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, attr, convert, required, allow_none, default in plan:
            value = data.get(key, _MISSING)
            if value is _MISSING:
                if required:
                    return schema.load(data)
                out[attr] = default
            elif value is None:
                if not allow_none:
                    return schema.load(data)
                out[attr] = None
            else:
                try:
                    out[attr] = convert(value)
                except ValidationError:
                    return schema.load(data)
        return out

    return load


_LOADERS: dict[int, tuple[Schema, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


def loader_for(schema: Schema) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """compile_loader(schema), compiled on first use and kept for the process."""
    entry = _LOADERS.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _LOADERS[id(schema)] = (schema, compile_loader(schema))
    return entry[1]
