"""Layer names and patterns, cornet time steps, ``neurofit layers``, and the input read from a
network's metadata (resize, crop, statistics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from neurofit import config as nf_config
from neurofit.cli import describe_layers, main
from neurofit.features import Preprocess, layer_activations, preprocess_for
from neurofit.models.catalog import match_layers, selectable_layers
from neurofit.models.train import ModelSpec

NAMES = ["", "layer3", "layer3.0", "layer3.0.conv1", "layer3.1", "layer3.1.conv1", "layer4", "avgpool"]


def test_patterns_stay_within_a_dotted_part_unless_doubled() -> None:
    assert match_layers(["layer3.*"], NAMES) == ["layer3.0", "layer3.1"]
    assert match_layers(["layer3.**"], NAMES) == ["layer3.0", "layer3.0.conv1", "layer3.1", "layer3.1.conv1"]
    assert match_layers(["layer?", "avgpool", "layer4"], NAMES) == ["layer3", "layer4", "avgpool"]
    with pytest.raises(ValueError, match=r"models.m.layers: 'layer5' matches no layer; close matches: \['layer"):
        match_layers(["layer5"], NAMES, key="models.m.layers")
    with pytest.raises(ValueError, match="'block.*' matches no layer"):
        match_layers(["block.*"], NAMES)


def test_cornet_time_steps_are_layers_and_the_area_is_its_last_step() -> None:
    assert selectable_layers("cornet_small", {"times": 3})[:7] == ["V1", "V2", "V4", "IT", "V1.t1", "V1.t2", "V1.t3"]
    model = ModelSpec(architecture="cornet_small", width=4, times=2, image_size=16).build().eval()
    images = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    prep = Preprocess(16)
    first, last, area = (layer_activations(model, name, images, prep, progress=False)
                         for name in ("V4.t1", "V4.t2", "V4"))
    np.testing.assert_array_equal(last, area)
    assert first.shape == last.shape and not np.allclose(first, last)


def test_config_layers_take_patterns_for_builtins_and_explicit_names_for_named_networks() -> None:
    config = {"models": {
        "cornet": {"architecture": "cornet_small", "layers": ["V4.t*", "IT"]},
        "alex": {"architecture": "alexnet_small", "layers": ["conv9"]},
        "vit": {"source": "transformers", "network": "ViTConfig", "weights": "random", "layers": ["layers.*"]},
        "vit2": {"source": "transformers", "network": "ViTConfig", "weights": "random", "layers": ["layers.1"]},
    }, "datasets": {}}
    assert nf_config.layers(config, "cornet") == ["V4.t1", "V4.t2", "IT"]
    assert nf_config.layers(config, "vit2") == ["layers.1"]
    with pytest.raises(ValueError, match=r"models.alex.layers: 'conv9' matches no layer; close matches: \['conv"):
        nf_config.layers(config, "alex")
    with pytest.raises(ValueError, match=r"models.vit.layers: patterns \['layers.\*'\] .*--match 'layers.\*'"):
        nf_config.layers(config, "vit")
    assert nf_config.weights_file({"weights": "pretrained:IMAGENET1K_V2"}) is None
    assert nf_config.weights_file({"weights": "random"}) is None
    assert nf_config.weights_file({"weights": "simulated:sim"}) is None
    assert nf_config.weights_file({"weights": "pretrained_v2.safetensors"}) == "pretrained_v2.safetensors"


def test_resize_shorter_side_then_centre_crop_keeps_the_aspect() -> None:
    wide = np.zeros((1, 40, 80), dtype=np.float32)
    wide[:, :, 20:60] = 1.0  # a white centre square of side 40 on black
    prep = Preprocess(16, grayscale=False, resize_size=20, mean=(0.0,) * 3, std=(1.0,) * 3, origin="test")
    x = prep(wide)
    assert x.shape == (1, 3, 16, 16)
    assert torch.all(x > 0.99)  # the crop lies inside the centre square: no black border squashed in
    squashed = Preprocess(16, grayscale=False, mean=(0.0,) * 3, std=(1.0,) * 3)(wide)
    assert squashed[0, 0, 8, 0] < 0.5  # a square resize keeps the black sides
    described = prep.describe()
    assert described["input_size"] == "shorter side 20 px, centre crop 16x16 px (bilinear), RGB"
    assert described["input_normalisation"].endswith("mean (0, 0, 0), std (1, 1, 1)")
    assert "32x32" in preprocess_for("alexnet_small", 32).describe()["input_size"]
    with pytest.raises(ValueError, match="both mean and std"):
        Preprocess(16, mean=(0.5,) * 3)


def test_image_processor_settings() -> None:
    transformers = pytest.importorskip("transformers")
    from neurofit.models.zoo import processor_input

    vit = processor_input(transformers.ViTImageProcessor())
    assert (vit["image_size"], vit["resize_size"], vit["mean"]) == (224, None, (0.5, 0.5, 0.5))
    convnext = processor_input(transformers.ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875))
    # (microsoft/resnet-50's processor config)
    assert (convnext["image_size"], convnext["resize_size"], convnext["interpolation"]) == (224, 256, "bicubic")
    assert processor_input(transformers.ConvNextImageProcessor())["resize_size"] is None  # 384 px: square
    clip = processor_input(transformers.CLIPImageProcessor())
    assert (clip["image_size"], clip["resize_size"]) == (224, 224)
    assert clip["mean"] == pytest.approx((0.4815, 0.4578, 0.4082), abs=1e-4)


def test_layers_command_for_a_config_and_for_an_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    config = {"datasets": {}, "models": {"cornet": {"architecture": "cornet_small", "width": 4, "image_size": 16}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    text = describe_layers(str(path), "cornet")
    assert "input resized to 16x16 px" in text
    assert any(line.split()[:3] == ["V4.t1", "Identity", "16x4x4"] for line in text.splitlines())
    entry = json.dumps({"source": "transformers", "network": "ResNetConfig",
                        "network_options": {"embedding_size": 8, "hidden_sizes": [8, 8, 8, 8], "depths": [1, 1, 1, 1]}})
    listed = json.loads(describe_layers(None, None, entry, ["encoder.stages.*"], as_json=True))
    assert [row["layer"] for row in listed["layers"]] == [f"encoder.stages.{i}" for i in range(4)]
    assert listed["layers"][0]["output_shape"] == [8, 56, 56]  # 224 px input: stem /4
    with pytest.raises(SystemExit):
        main(["layers", str(path), "nothere"])
    assert "models.nothere: not in" in capsys.readouterr().err


def test_schema_requires_network_weights_and_layers_of_a_named_network(repo: Path) -> None:
    schema = repo / "workflow/schemas/config.schema.yaml"
    config = {"datasets": {"sim": {"source": "simulated"}},
              "models": {"vit": {"source": "transformers", "network": "ViTConfig"},
                         "keras": {"source": "keras", "network": "x", "weights": "random", "layers": ["a"]}}}
    with pytest.raises(nf_config.ConfigError) as error:
        nf_config.check(config, schema)
    assert "models.vit: 'weights' is a required property" in str(error.value)
    assert "models.keras.source: 'keras' is not one of" in str(error.value)
    zoo = yaml.safe_load((repo / "config/examples/zoo.yaml").read_text())
    nf_config.check(zoo, schema)
