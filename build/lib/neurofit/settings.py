"""Typed stage settings: each stage's options as a frozen dataclass, built once from the validated config.

A settings class names the config key it is read from (``SCHEMA_KEY``, a dotted path into
``workflow/schemas/config.schema.yaml``: ``encoding``, ``encoding.splits``, ``$defs.model.features``)
and holds each of that key's options as a field whose default is the schema's (``tests/test_settings.py``
walks the schema and checks every class). ``from_config`` rejects names that are not fields, builds the
nested settings (a field whose type is itself a settings class) from their sub-mappings and turns lists
into tuples, so a settings object is hashable and its defaults are written in one place only.

Pure Python: encoding/ and the Snakefile import it without numpy or torch.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

S = TypeVar("S", bound="Settings")


class SettingsError(ValueError):
    """Settings with a name the stage does not take, or a value of the wrong shape; names the key."""


class Settings:
    """Base of the stage settings dataclasses (subclasses are ``@dataclass(frozen=True)``)."""

    SCHEMA_KEY: ClassVar[str] = ""
    # Keys of the same config mapping that other settings take (the test checks the two cover the schema).
    ELSEWHERE: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_config(cls: type[S], values: Mapping[str, Any] | None = None, key: str | None = None) -> S:
        """The settings from a config mapping (unset keys take the defaults); ``key`` names the mapping in
        error messages (default ``SCHEMA_KEY``)."""
        key = key or cls.SCHEMA_KEY
        values = {} if values is None else values
        if not isinstance(values, Mapping):
            raise SettingsError(f"{key}: expected a mapping of options, got {values!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise SettingsError(f"{key}: unknown option(s) {unknown}; {cls.__name__} takes {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        built = {}
        for name, value in values.items():
            nested = _settings_type(hints[name])
            if nested is not None:
                built[name] = nested.from_config(value, f"{key}.{name}")
            else:
                built[name] = _frozen(value)
        return cls(**built)

    def to_config(self) -> dict[str, Any]:
        """The settings as a plain config mapping (lists, not tuples): ``from_config(to_config())`` is equal."""
        return {f.name: _thawed(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def _settings_type(hint: Any) -> type[Settings] | None:
    return hint if isinstance(hint, type) and issubclass(hint, Settings) else None


def _frozen(value: Any) -> Any:
    """Lists as tuples (recursively), so that a frozen settings object is hashable and cannot be mutated."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, Settings):
        return value.to_config()
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


def field_default(field: dataclasses.Field) -> Any:
    """A dataclass field's default (from its factory when it has one); MISSING when it has none."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default
