"""Typed stage settings agree with the schema: a default written in two places must be the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from neurofit.neural.responses import ResponseSpec

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


def test_response_spec_defaults_are_the_schemas():
    properties = yaml.safe_load(SCHEMA.read_text())["$defs"]["dataset"]["properties"]["responses"]["properties"]
    fields = {f.name: f for f in dataclasses.fields(ResponseSpec)}
    assert set(properties) <= set(fields), set(properties) - set(fields)  # every key reaches the spec
    for key, prop in properties.items():
        field = fields[key]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if "default" in prop:
            assert _plain(default) == prop["default"], key
        else:  # optional without a default: the spec's default means "not set"
            assert default in (None, [], {}), key
