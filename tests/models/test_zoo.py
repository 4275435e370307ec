"""Named networks: Hugging Face ResNet/ViT with random, local-file (safetensors) and local "pretrained"
weights; the input each states; errors that name the key. torchvision/timm cases run where those
packages import (a GPU machine) and skip here with the reason."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from neurofit.features import extract_layer, layer_shapes, preprocess_named
from neurofit.models.weights import save_weights
from neurofit.models.zoo import NamedNetwork, ZooError, prepare, rebuild

transformers = pytest.importorskip("transformers", reason="the transformers extra is not installed")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")

# Small members of the two families (same code paths as ResNet-50 / ViT-B, seconds instead of minutes).
SMALL_RESNET = {"embedding_size": 8, "hidden_sizes": [16, 24, 32, 40], "depths": [1, 1, 1, 1]}
SMALL_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "image_size": 64, "patch_size": 16}


def entry(network: str, options: dict, weights: str = "random", **more) -> dict:
    return {"source": "transformers", "network": network, "weights": weights, "network_options": options, **more}


def stimuli(n: int = 5, size: int = 40, colour: bool = False) -> xr.DataArray:
    shape = (n, size, size, 3) if colour else (n, size, size)
    values = np.random.default_rng(0).random(shape, dtype=np.float32)
    dims = ("stimulus", "y", "x", "channel") if colour else ("stimulus", "y", "x")
    return xr.DataArray(values, dims=dims, coords={"stimulus_id": ("stimulus", [f"s{i}" for i in range(n)])})


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_random_weights_are_the_seeded_control_of_the_same_architecture() -> None:
    net = NamedNetwork.from_config("r", entry("ResNetConfig", SMALL_RESNET, layers=["encoder.stages.*"]))
    first, again = prepare(net), prepare(net)
    other = prepare(NamedNetwork.from_config("r", entry("ResNetConfig", SMALL_RESNET, seed=1)))
    assert state_equal(first.model, again.model)
    assert not state_equal(first.model, other.model)
    assert first.record["layers"] == [f"encoder.stages.{i}" for i in range(4)]  # a pattern, expanded in order
    assert first.record["weights_identity"]["seed"] == 0
    assert first.input["image_size"] == 224 and first.input["resize_size"] is None
    assert first.input["mean"] == [0.485, 0.456, 0.406] and "ResNetConfig" in first.input["origin"]


def test_full_size_resnet50_and_vit_b_build_offline() -> None:
    resnet = prepare(NamedNetwork.from_config("r50", entry("ResNetConfig", {}, layers=["encoder.stages.0"])))
    vit = prepare(NamedNetwork.from_config("vit", entry("ViTConfig", {}, layers=["layers.11"])))
    assert 23e6 < resnet.record["n_parameters"] < 24e6  # ResNet-50 without its classifier
    assert 85e6 < vit.record["n_parameters"] < 87e6  # ViT-B/16
    rows = {row["layer"]: row for row in layer_shapes(resnet.model, preprocess_named(resnet.input))}
    assert rows["encoder.stages.0"]["output_shape"] == [256, 56, 56]  # 802,816 features at 224 px
    assert vit.input["image_size"] == 224


def test_features_of_a_vit_token_layer_and_their_input_attributes(tmp_path: Path) -> None:
    prepared = prepare(NamedNetwork.from_config("vit", entry("ViTConfig", SMALL_VIT, layers=["layers.1"])))
    prep = preprocess_named(prepared.input)
    features = extract_layer(prepared.model, "layers.1", stimuli(colour=True), prep, batch_size=2)
    assert features.shape == (5, 17 * 32)  # (64/16)^2 patches + [CLS], 32 dims each
    assert features.attrs["preprocess_image_size"] == 64
    assert features.attrs["input_size"].startswith("resized to 64x64 px")
    assert "mean (0.485, 0.456, 0.406)" in features.attrs["input_normalisation"]
    whole = extract_layer(prepared.model, "layers.1", stimuli(colour=True), prep, batch_size=5)
    np.testing.assert_allclose(features.values, whole.values, rtol=1e-4, atol=1e-5)


def test_local_safetensors_and_pt_files_load_with_their_digest(tmp_path: Path) -> None:
    source = prepare(NamedNetwork.from_config("v", entry("ViTConfig", SMALL_VIT, seed=3))).model
    # A head model's file (keys prefixed "vit.", plus a classifier the backbone lacks) loads into the backbone.
    head = {f"vit.{k}": v.contiguous() for k, v in source.state_dict().items()}
    safetensors_torch.save_file({**head, "classifier.weight": torch.zeros(4, 32)}, tmp_path / "w.safetensors")
    save_weights(source, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        loaded = prepare(NamedNetwork.from_config("v", entry("ViTConfig", SMALL_VIT, str(tmp_path / name))))
        assert state_equal(loaded.model, source), name
        identity = loaded.record["weights_identity"]
        assert len(identity["sha256"]) == 64 and identity["file"].endswith(name)
    assert identity["stripped_prefix"] == "" and identity["ignored_tensors"] == 0
    from_head = prepare(NamedNetwork.from_config("v", entry("ViTConfig", SMALL_VIT, str(tmp_path / "w.safetensors"))))
    assert from_head.record["weights_identity"]["stripped_prefix"] == "vit."
    assert from_head.record["weights_identity"]["ignored_tensors"] == 1


def test_pretrained_from_a_saved_model_folder_uses_its_image_processor(tmp_path: Path) -> None:
    model = transformers.ViTModel(transformers.ViTConfig(**SMALL_VIT))
    model.save_pretrained(tmp_path / "vit")
    transformers.ViTImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.5] * 3,
                                   image_std=[0.5] * 3).save_pretrained(tmp_path / "vit")
    prepared = prepare(NamedNetwork.from_config("v", entry(str(tmp_path / "vit"), {}, "pretrained")))
    assert state_equal(prepared.model, model)
    assert prepared.input["mean"] == [0.5, 0.5, 0.5] and prepared.input["image_size"] == 64
    assert "ViTImageProcessor" in prepared.input["origin"]
    assert prepared.record["weights_identity"]["sha256"]
    # The features job rebuilds the architecture from the record, offline, and loads the pipeline's copy.
    again = rebuild(NamedNetwork.from_config("v", entry(str(tmp_path / "vit"), {}, "pretrained")), prepared.record)
    again.load_state_dict(prepared.model.state_dict())
    assert state_equal(again, model)


def test_pretrained_without_network_or_cache_names_the_missing_files(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    net = NamedNetwork.from_config("vitb", entry("google/vit-base-patch16-224", {}, "pretrained"))
    with pytest.raises(ZooError, match="models.vitb.weights") as error:
        prepare(net)
    assert "models--google--vit-base-patch16-224" in str(error.value) and str(tmp_path / "hub") in str(error.value)


@pytest.mark.parametrize(("change", "message"), [
    ({"source": "keras"}, "models.m.source: 'keras'"),
    ({"network": "ResNettConfig"}, "models.m.network: transformers has no .*ResNetConfig"),
    ({"weights": "pretrained"}, "models.m.weights: ResNetConfig is an architecture without weights"),
    ({"layers": ["encoder.stage.3"]}, "models.m.layers: 'encoder.stage.3' matches no layer; .*encoder.stages.3"),
    ({"weights": "missing.safetensors"}, "models.m.weights: weights file missing.safetensors does not exist"),
    ({"model_class": "AutoNothing"}, "models.m.model_class"),
    ({"network": None}, "models.m.network: required"),
])
def test_errors_name_the_key(change: dict, message: str) -> None:
    settings = {**entry("ResNetConfig", SMALL_RESNET), **change}
    with pytest.raises(ZooError, match=message):
        prepare(NamedNetwork.from_config("m", settings))


def test_weights_of_the_wrong_shape_name_the_tensors(tmp_path: Path) -> None:
    wider = prepare(NamedNetwork.from_config("w", entry("ResNetConfig", {**SMALL_RESNET, "embedding_size": 12})))
    safetensors_torch.save_file(wider.model.state_dict(), tmp_path / "wide.safetensors")
    with pytest.raises(ZooError, match=r"models.m.weights .*wrong shape.*embedder.embedder.convolution.weight "
                                       r"\(12, 3, 7, 7\) != \(8, 3, 7, 7\)"):
        prepare(NamedNetwork.from_config("m", entry("ResNetConfig", SMALL_RESNET, str(tmp_path / "wide.safetensors"))))


def test_a_pickle_that_runs_code_is_refused_with_torchs_reason(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    torch.save({"weight": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(ZooError) as error:
        prepare(NamedNetwork.from_config("m", entry("ResNetConfig", SMALL_RESNET, str(tmp_path / "evil.pt"))))
    text = str(error.value)
    assert "models.m.weights" in text and "GLOBAL" in text and "system" in text
    assert "weights_only=False" not in text and "`False`" not in text


def test_a_users_module_by_callable() -> None:
    settings = {"source": "module", "network": "neurofit.models.architectures:AlexNetSmall", "weights": "random",
                "network_options": {"num_outputs": 4, "width": 4, "image_size": 32}, "layers": ["conv1", "fc"],
                "input": {"size": 32, "resize": 36}}
    prepared = prepare(NamedNetwork.from_config("own", settings))
    assert prepared.record["layers"] == ["conv1", "fc"]
    assert prepared.input["image_size"] == 32 and prepared.input["resize_size"] == 36
    assert "with models.own.input" in prepared.input["origin"]
    with pytest.raises(ZooError, match="models.own.network: cannot import"):
        prepare(NamedNetwork.from_config("own", {**settings, "network": "neurofit.nothing:Net"}))


def _importable(package: str) -> None:
    try:
        importlib.import_module(package)
    except Exception as error:  # a broken install raises more than ImportError
        pytest.skip(f"{package} does not import here: {type(error).__name__}: {error}")


def test_torchvision_random_weights_with_its_transform_and_offline_error(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _importable("torchvision")
    prepared = prepare(NamedNetwork.from_config("tv", {"source": "torchvision", "network": "resnet18",
                                                       "weights": "random", "layers": ["layer3.*", "avgpool"]}))
    assert prepared.record["layers"] == ["layer3.0", "layer3.1", "avgpool"]
    assert prepared.input["image_size"] == 224 and prepared.input["resize_size"] == 256
    assert "IMAGENET1K_V1.transforms()" in prepared.input["origin"]
    with pytest.raises(ZooError, match="models.tv.network: torchvision has no model 'resnet5'"):
        prepare(NamedNetwork.from_config("tv", {"source": "torchvision", "network": "resnet5", "weights": "random"}))
    with pytest.raises(ZooError, match="models.tv.weights: .*no weights 'IMAGENET9K'"):
        prepare(NamedNetwork.from_config("tv", {"source": "torchvision", "network": "resnet18",
                                                "weights": "pretrained:IMAGENET9K"}))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)  # offline even where there is network
    with pytest.raises(ZooError, match=r"models.tv.weights: .*resnet18-f37072fd.pth"):
        prepare(NamedNetwork.from_config("tv", {"source": "torchvision", "network": "resnet18",
                                                "weights": "pretrained:IMAGENET1K_V1"}))


def _no_network(*args, **kwargs):
    raise OSError("no network in this test")


def test_timm_random_weights_with_its_data_config(tmp_path: Path) -> None:
    _importable("timm")
    prepared = prepare(NamedNetwork.from_config("t", {"source": "timm", "network": "vit_tiny_patch16_224",
                                                      "weights": "random", "layers": ["blocks.11"]}))
    assert prepared.input["image_size"] == 224 and prepared.input["resize_size"] == 248  # crop_pct 0.9
    assert prepared.input["interpolation"] == "bicubic"
    with pytest.raises(ZooError, match="models.t.network: timm has no model"):
        prepare(NamedNetwork.from_config("t", {"source": "timm", "network": "vit_tinyy", "weights": "random"}))
