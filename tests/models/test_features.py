"""Features: every block by name, right shapes, batching-invariant, preprocessing, reduction, netCDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from neurofit.features import Preprocess, extract_layer, preprocess_for, reduce_features, save_features
from neurofit.images import render_objects
from neurofit.models.catalog import layer_names
from neurofit.models.train import ModelSpec


def _stimuli(n: int = 10, size: int = 24) -> xr.DataArray:
    images = render_objects(n, size, seed=4).images
    return xr.DataArray(images, dims=("stimulus", "y", "x"),
                        coords={"stimulus_id": ("stimulus", [f"s{i}" for i in range(n)])})


def test_every_layer_by_name_with_full_forward_shapes(architecture: str) -> None:
    spec = ModelSpec(architecture=architecture, width=4, image_size=16)
    model = spec.build().eval()
    stimuli = _stimuli()
    full: dict[str, torch.Tensor] = {}
    hooks = [dict(model.named_modules())[name].register_forward_hook(
        lambda _m, _i, o, name=name: full.__setitem__(name, o.flatten(1))) for name in layer_names(architecture)]
    with torch.no_grad():
        model(Preprocess(16)(stimuli.values))
    for hook in hooks:
        hook.remove()
    for layer in layer_names(architecture):
        features = extract_layer(model, layer, stimuli, 16, batch_size=3)
        assert features.dims == ("stimulus", "feature")
        assert list(features["stimulus_id"].values) == list(stimuli["stimulus_id"].values)
        assert features.attrs["layer"] == layer
        # Stopping the forward pass at the layer and batching by 3 change nothing.
        np.testing.assert_allclose(features.values, full[layer].numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError, match="layer 'V9' not in model"):
        extract_layer(model, "V9", stimuli, 16)


def test_preprocessing_grey_colour_uint8_and_degrees() -> None:
    grey = np.full((2, 8, 8), 0.75, dtype=np.float32)
    x = Preprocess(16)(grey)
    assert x.shape == (2, 3, 16, 16)
    torch.testing.assert_close(x, torch.full_like(x, 1.0))  # (0.75 - 0.5) / 0.25
    colour = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    colour[..., 0] = 255
    as_grey = Preprocess(8)(colour)
    torch.testing.assert_close(as_grey[0, :, 0, 0], torch.full((3,), (0.299 - 0.5) / 0.25))
    as_rgb = Preprocess(8, grayscale=False, normalisation="imagenet")(colour)
    torch.testing.assert_close(as_rgb[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]))
    # A 4-degree stimulus in an 8-degree field: the centre half shows it, the rest is mid-grey (0 after norm).
    white = np.ones((1, 8, 8), dtype=np.float32)
    placed = Preprocess(16, stimulus_degrees=4, model_degrees=8)(white)[0, 0]
    assert torch.all(placed[4:12, 4:12] == 2.0)
    assert torch.all(placed[:4] == 0) and torch.all(placed[:, 12:] == 0)
    cropped = Preprocess(16, stimulus_degrees=16, model_degrees=8)(white)
    assert cropped.shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="both stimulus_degrees and model_degrees"):
        Preprocess(16, stimulus_degrees=4)
    assert preprocess_for("torchvision:resnet18", 32).normalisation == "imagenet"
    assert preprocess_for("alexnet_small", 32, {"stimulus_degrees": 4, "model_degrees": 8}).placed_size() == 16


@pytest.mark.parametrize("method", ["pca", "random"])
def test_reduction_to_at_most_k_dims(method: str, tmp_path: Path) -> None:
    model = ModelSpec(width=4, image_size=16).build()
    stimuli = _stimuli(12)
    features = extract_layer(model, "conv1", stimuli, 16, reduce=method, max_dims=5, seed=1)
    assert features.shape == (12, 5)
    assert features.attrs["reduce"] == method and features.attrs["original_features"] == 4 * 8 * 8
    again = extract_layer(model, "conv1", stimuli, 16, reduce=method, max_dims=5, seed=1)
    np.testing.assert_array_equal(features.values, again.values)
    if method == "pca":
        assert 0 < features.attrs["explained_variance"] <= 1
    path = tmp_path / "conv1.nc"
    save_features(features, str(path), architecture="alexnet_small")
    back = xr.load_dataarray(path, engine="h5netcdf")
    np.testing.assert_array_equal(back.values, features.values)
    assert back.attrs["reduce"] == method and back.attrs["architecture"] == "alexnet_small"


def test_reduction_keeps_small_layers_and_pca_caps_at_stimuli() -> None:
    values = np.random.default_rng(0).standard_normal((6, 40)).astype(np.float32)
    kept, info = reduce_features(values, "pca", 50, 0)
    assert kept is values and info["reduce"].startswith("none")
    reduced, _ = reduce_features(values, "pca", 20, 0)
    assert reduced.shape == (6, 6)
    with pytest.raises(ValueError, match="features.reduce 'ica'"):
        reduce_features(values, "ica", 5, 0)
