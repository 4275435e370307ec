"""Typed stage settings agree with the schema: a default written in two places must be the same.

Every settings class (each ``settings.py`` / ``*_settings.py`` module of the package, found by walking the
source) is checked against the schema node its ``SCHEMA_KEY`` names, generically: its fields are that node's
keys, its defaults are the schema's, the keys it leaves to other stages are named, unknown names are refused.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing
from pathlib import Path

import pytest
import yaml

from neurofit.neural.responses import ResponseSpec
from neurofit.neural.trials import TrialSpec
from neurofit.settings import Settings, SettingsError, field_default

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
PACKAGE = ROOT / "src" / "neurofit"


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


def _node(key: str) -> dict:
    """The schema node of a dotted key: ``encoding.splits`` (under the top-level properties) or
    ``$defs.model.features`` (a definition, then its properties); ``$ref``s followed."""
    parts = key.split(".")
    node = SCHEMA["$defs"][parts[1]] if parts[0] == "$defs" else SCHEMA["properties"][parts[0]]
    for part in parts[2:] if parts[0] == "$defs" else parts[1:]:
        node = node["properties"][part]
    if "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _schema_defaults(node: dict) -> dict:
    """What Snakemake's ``validate(set_default=True)`` fills into an empty mapping of this node."""
    filled = {}
    for name, prop in node.get("properties", {}).items():
        if "default" in prop:
            filled[name] = prop["default"]
            if isinstance(prop["default"], dict) and "properties" in prop:
                filled[name] = {**_schema_defaults(prop), **prop["default"]}
    return filled


def _settings_classes() -> list[type[Settings]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "settings.py" or path.name.endswith("_settings.py"):
            module = ".".join(("neurofit", *path.relative_to(PACKAGE).with_suffix("").parts))
            importlib.import_module(module)
    found, todo = [], list(Settings.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(found, key=lambda cls: cls.__name__)


SETTINGS = _settings_classes()


def test_every_stage_settings_class_is_found():
    assert {cls.__name__ for cls in SETTINGS} >= {"EncodingSettings", "SplitSettings", "AlphaGrid", "CeilingSettings",
                                                  "TrialEncodingSettings", "TrialCeilingSettings", "ReportSettings",
                                                  "FeatureSettings"}


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda cls: cls.__name__)
def test_settings_fields_and_defaults_are_the_schemas(cls):
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
    node = _node(cls.SCHEMA_KEY)
    properties = node["properties"]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    assert set(fields) <= set(properties), f"{cls.__name__}: not config keys: {set(fields) - set(properties)}"
    assert set(properties) >= cls.ELSEWHERE, f"{cls.__name__}: stale ELSEWHERE {cls.ELSEWHERE - set(properties)}"
    assert set(properties) <= set(fields) | cls.ELSEWHERE, \
        f"{cls.SCHEMA_KEY}: keys no settings class takes: {set(properties) - set(fields) - cls.ELSEWHERE}"
    for name, field in fields.items():
        default, prop = field_default(field), properties[name]
        assert default is not dataclasses.MISSING, f"{cls.__name__}.{name} has no default"
        nested = hints[name]
        if isinstance(nested, type) and issubclass(nested, Settings):
            assert f"{cls.SCHEMA_KEY}.{name}" == nested.SCHEMA_KEY and default == nested(), (cls, name)
            assert prop.get("default") == {}, (cls, name)  # the nested class holds the defaults
        elif "default" in prop:
            assert _plain(default) == prop["default"], f"{cls.__name__}.{name}: {default!r} != {prop['default']!r}"
        else:  # optional without a schema default: the settings' default means "not set"
            assert default in (None, (), {}), f"{cls.__name__}.{name}: {default!r} but the schema has no default"


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda cls: cls.__name__)
def test_settings_from_the_schema_filled_config_are_the_defaults(cls):
    filled = {k: v for k, v in _schema_defaults(_node(cls.SCHEMA_KEY)).items() if k not in cls.ELSEWHERE}
    assert cls.from_config(filled) == cls.from_config({}) == cls.from_config(None) == cls()
    assert cls.from_config(cls().to_config()) == cls()


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda cls: cls.__name__)
def test_unknown_option_names_are_refused_naming_the_key(cls):
    with pytest.raises(SettingsError, match=rf"{re.escape(cls.SCHEMA_KEY)}: unknown option\(s\) \['no_such_option'\]"):
        cls.from_config({"no_such_option": 1})


def test_nested_settings_are_built_and_their_unknown_names_refused():
    from neurofit.encoding.settings import AlphaGrid, EncodingSettings, SplitSettings

    spec = EncodingSettings.from_config({"splits": {"n_splits": 4, "stratify_coords": ["category"]},
                                         "alphas": {"n": 3}})
    assert spec.splits == SplitSettings(n_splits=4, stratify_coords=("category",))
    assert spec.alphas == AlphaGrid(n=3) and list(spec.alphas.values()) == [1e-2, 1e2, 1e6]
    with pytest.raises(SettingsError, match=r"encoding\.splits: unknown option\(s\) \['n_split'\]"):
        EncodingSettings.from_config({"splits": {"n_split": 4}})
    with pytest.raises(SettingsError, match=r"encoding\.alphas: expected a mapping"):
        EncodingSettings.from_config({"alphas": [1, 2]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.inner_folds = 3  # type: ignore[misc]


def test_library_defaults_are_the_settings_defaults():
    """The encoding functions keep keyword defaults for use outside the pipeline: they must be the settings'."""
    from neurofit.encoding.fit import fit_groups
    from neurofit.encoding.settings import TrialEncodingSettings
    from neurofit.encoding.timecourse import score_region
    from neurofit.neural.settings import TrialCeilingSettings
    from neurofit.neural.trials import build_trial_dataset

    # the fit takes its settings as one typed object (default: the schema's defaults), never loose options
    parameters = inspect.signature(fit_groups).parameters
    assert list(parameters) == ["metric", "features", "responses", "groups", "settings", "stratify"]
    assert parameters["settings"].default is None
    trial, parameters = TrialEncodingSettings(), inspect.signature(score_region).parameters
    assert (parameters["n_folds"].default, parameters["seed"].default, parameters["n_bootstrap"].default,
            parameters["n_null"].default, parameters["normalisation"].default) == (
        trial.n_folds, trial.seed, trial.bootstrap, trial.n_null, trial.normalisation)
    parameters = inspect.signature(build_trial_dataset).parameters
    assert (parameters["n_splits"].default, parameters["seed"].default) == (TrialCeilingSettings().n_splits,
                                                                            TrialCeilingSettings().seed)


def test_feature_settings_batch_size_and_preprocessing():
    from neurofit.feature_settings import BUILTIN_BATCH_SIZE, NAMED_BATCH_SIZE, FeatureSettings

    assert FeatureSettings().batch(named=False) == BUILTIN_BATCH_SIZE == 128  # the schema's description
    assert FeatureSettings().batch(named=True) == NAMED_BATCH_SIZE == 32
    assert FeatureSettings(batch_size=7).batch(named=True) == 7
    options = FeatureSettings.from_config({"grayscale": False, "reduce": "pca", "max_dims": 5})
    assert options.preprocessing() == {"grayscale": False}


@pytest.mark.parametrize(("spec", "key"), [(ResponseSpec, "$defs.dataset.responses"),
                                           (TrialSpec, "$defs.trial_dataset.responses")])
def test_response_spec_defaults_are_the_schemas(spec, key):
    properties = _node(key)["properties"]
    fields = {f.name: f for f in dataclasses.fields(spec)}
    assert set(properties) <= set(fields), set(properties) - set(fields)  # every key reaches the spec
    for name, prop in properties.items():
        default = field_default(fields[name])
        if "default" in prop:
            assert _plain(default) == prop["default"], name
        else:  # optional without a default: the spec's default means "not set"
            assert default in (None, [], {}, ()) or default is dataclasses.MISSING, name
