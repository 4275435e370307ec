"""Activations of named layers for a stimulus set, through forward hooks, batched.

One layer per call: the layer's activations for the stimulus set are the only large array held
(preallocated once; the forward pass stops at the layer), so peak memory is one layer's, not
the network's. Optional reduction to at most K dimensions (PCA or a Gaussian random projection,
fitted on these stimuli, on the whole layer) or, for wide layers, while the batches arrive (a sparse
random projection, PCA fitted on a separate image set, or the Gram matrix only:
:mod:`neurofit.reduction`) is recorded in the artefact's attributes.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn
from tqdm import tqdm

from neurofit.models.catalog import close_matches, is_external
from neurofit.models.train import device

NORMALISATIONS = {  # per-channel (mean, std) of the input the network was trained on
    "neurofit": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),  # the grey images of neurofit's tasks
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision/timm weights
}
REDUCTIONS = ("pca", "random", "sparse_random", "pca_images", "gram")
INTERPOLATIONS = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}  # name -> F.interpolate mode


@dataclass(frozen=True)
class Preprocess:
    """How stimuli become network input.

    Stimuli are read at their native size. ``resize_size``: the shorter side is resized to it (aspect
    kept), then the centre ``image_size`` square is cropped (torchvision/timm evaluation); without it
    the image is resized to ``image_size`` square (Hugging Face ViT processors, the built-in nets).
    ``mean``/``std``: per-channel statistics (default: those of the ``normalisation`` preset);
    ``origin`` says where the settings came from (the weights' transforms, timm's data config, the
    image processor, or a documented default).

    ``grayscale``: colour stimuli are shown as luminance (grey stimuli are always replicated to
    RGB). With ``stimulus_degrees`` and ``model_degrees`` the stimulus is placed as Brain-Score
    does: the network's input spans ``model_degrees`` of visual angle, the image is scaled to span
    ``stimulus_degrees`` of it and the rest is mid-grey (cropped centrally if larger)."""

    image_size: int
    grayscale: bool = True
    normalisation: str = "neurofit"
    stimulus_degrees: float | None = None
    model_degrees: float | None = None
    resize_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str = "bilinear"
    origin: str = "neurofit built-in"

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ValueError("features: give both mean and std, or neither")
        if self.mean is None and self.normalisation not in NORMALISATIONS:
            raise ValueError(f"features.normalisation {self.normalisation!r}; known: {list(NORMALISATIONS)}")
        if (self.stimulus_degrees is None) != (self.model_degrees is None):
            raise ValueError("features: give both stimulus_degrees and model_degrees, or neither")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"features: interpolation {self.interpolation!r}; known: {list(INTERPOLATIONS)}")

    def statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.mean is not None and self.std is not None:
            return tuple(self.mean), tuple(self.std)
        return NORMALISATIONS[self.normalisation]

    def describe(self) -> dict[str, str]:
        """``input_size`` and ``input_normalisation`` as the features' attributes and the report state them."""
        mean, std = self.statistics()
        resize = f"shorter side {self.resize_size} px, centre crop " if self.resize_size else "resized to "
        colour = "luminance as RGB" if self.grayscale else "RGB"
        return {"input_size": f"{resize}{self.image_size}x{self.image_size} px ({self.interpolation}), {colour}",
                "input_normalisation": f"{self.normalisation}: mean {_fmt(mean)}, std {_fmt(std)}",
                "input_origin": self.origin}

    def placed_size(self) -> int:
        if self.stimulus_degrees is None or self.model_degrees is None:
            return self.image_size
        return max(1, round(self.image_size * self.stimulus_degrees / self.model_degrees))

    def _resize(self, x: torch.Tensor, size: int) -> torch.Tensor:
        mode = INTERPOLATIONS[self.interpolation]
        smooth = {"antialias": True, "align_corners": False} if mode != "nearest" else {}
        if self.resize_size is None:
            if x.shape[-2:] != (size, size):
                x = F.interpolate(x, size=(size, size), mode=mode, **smooth)
            return x
        # Shorter side to resize_size (scaled with the placement), then the centre square.
        short = max(1, round(self.resize_size * size / self.image_size))
        height, width = x.shape[-2:]
        target = (short, max(1, round(width * short / height))) if height <= width else \
            (max(1, round(height * short / width)), short)
        if tuple(x.shape[-2:]) != target:
            x = F.interpolate(x, size=target, mode=mode, **smooth)
        top, left = (target[0] - size) // 2, (target[1] - size) // 2
        return x[..., top:top + size, left:left + size]

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """Stimuli (n, H, W) or (n, H, W, C), floats in [0, 1] or 8-bit -> (n, 3, size, size) input."""
        scale = 255.0 if np.issubdtype(images.dtype, np.integer) else 1.0
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        if scale != 1.0:
            x = x / scale
        if x.ndim == 4:
            x = x[..., :3].permute(0, 3, 1, 2)
            if self.grayscale or x.shape[1] != 3:
                weights = torch.tensor([0.299, 0.587, 0.114])[: x.shape[1]]
                x = (x * (weights / weights.sum())[None, :, None, None]).sum(1, keepdim=True)
        else:
            x = x[:, None]
        x = x.expand(-1, 3, -1, -1)
        size = self.placed_size()
        x = self._resize(x, size)
        if self.interpolation == "bicubic":
            x = x.clamp(0.0, 1.0)  # bicubic overshoots; image processors clip to the valid range
        if size < self.image_size:
            before = (self.image_size - size) // 2
            after = self.image_size - size - before
            x = F.pad(x, (before, after, before, after), value=0.5)
        elif size > self.image_size:
            start = (size - self.image_size) // 2
            x = x[..., start:start + self.image_size, start:start + self.image_size]
        mean, std = (torch.tensor(v)[None, :, None, None] for v in self.statistics())
        return (x - mean) / std


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def preprocess(images: np.ndarray, image_size: int, **options: Any) -> torch.Tensor:
    """Stimuli -> network input at ``image_size`` (see :class:`Preprocess` for the options)."""
    return Preprocess(image_size, **options)(images)


def preprocess_for(architecture: str, image_size: int, options: dict[str, Any] | None = None) -> Preprocess:
    """The preprocessing of a model entry: its ``features:`` options over the architecture's
    defaults (external ImageNet models see colour with ImageNet statistics)."""
    options = options or {}
    external = is_external(architecture)
    origin = f"{architecture} defaults" if external else f"neurofit built-in {architecture}: its training input size"
    return Preprocess(
        image_size,
        grayscale=bool(options.get("grayscale", not external)),
        normalisation=options.get("normalisation", "imagenet" if external else "neurofit"),
        stimulus_degrees=options.get("stimulus_degrees"),
        model_degrees=options.get("model_degrees"),
        origin=origin,
    )


def preprocess_named(settings: dict[str, Any], options: dict[str, Any] | None = None) -> Preprocess:
    """The preprocessing of a named network: the input its library states (``settings``, as
    recorded by :func:`neurofit.models.zoo.prepare`) with the entry's ``features:`` options (colour by
    default; a ``normalisation`` preset replaces the stated statistics)."""
    options = options or {}
    settings = dict(settings)
    if options.get("normalisation"):
        settings.update(mean=None, std=None, normalisation=options["normalisation"])
    for key in ("mean", "std"):
        if settings.get(key) is not None:
            settings[key] = tuple(float(v) for v in settings[key])
    return Preprocess(grayscale=bool(options.get("grayscale", False)), stimulus_degrees=options.get("stimulus_degrees"),
                      model_degrees=options.get("model_degrees"), **settings)


class _Captured(Exception):
    """Raised by the hook to stop the forward pass once the layer's output is captured."""


def output_tensor(output: Any, layer: str = "") -> torch.Tensor:
    """A module's output as one tensor: itself, the first tensor of a tuple/list, or a Hugging Face
    output's first field (``last_hidden_state``)."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "to_tuple"):
        output = output.to_tuple()
    if isinstance(output, tuple | list):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise TypeError(f"layer {layer!r} outputs {type(output).__name__}, not a tensor; choose one of its submodules")


@torch.no_grad()
def iter_layer_batches(model: nn.Module, layer: str, images: np.ndarray, prep: Preprocess, batch_size: int = 128,
                       progress: bool = True, dev: torch.device | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(first stimulus index, (batch, feature) float32 activations)`` of module ``layer`` (its first
    call per forward) for consecutive batches of ``images``, computed on ``dev`` (default: CUDA when
    available); the forward pass stops at the layer."""
    modules = dict(model.named_modules())
    if layer not in modules:
        raise KeyError(f"layer {layer!r} not in model; close matches: {close_matches(layer, modules)} "
                       f"(`neurofit layers <config> <model>` lists every layer)")
    dev = dev or device()
    model.to(dev).eval()
    batch: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        batch.append(output_tensor(output, layer).flatten(1).float().cpu())
        raise _Captured

    handle = modules[layer].register_forward_hook(hook)
    try:
        starts = range(0, len(images), batch_size)
        for start in tqdm(starts, desc=f"features {layer}", leave=False, disable=not progress):
            batch.clear()
            with contextlib.suppress(_Captured):
                model(prep(images[start:start + batch_size]).to(dev))
            if not batch:
                raise RuntimeError(f"layer {layer!r} was not called in the forward pass")
            yield start, batch[0].numpy()
    finally:
        handle.remove()


def collect(batches: Iterator[tuple[int, np.ndarray]], n: int) -> np.ndarray:
    """The batches in one ``(n, feature)`` array, preallocated (no second copy from concatenating)."""
    values: np.ndarray | None = None
    for start, out in batches:
        if values is None:
            values = np.empty((n, out.shape[1]), dtype=np.float32)
        values[start:start + len(out)] = out
    assert values is not None
    return values


@torch.no_grad()
def layer_shapes(model: nn.Module, prep: Preprocess) -> list[dict[str, Any]]:
    """Every module's name, type and output shape for one image (the first call's output), in
    module order, as THINGSvision's ``show_model()``: what a config's ``layers`` can name."""
    shapes: dict[str, Any] = {}
    handles = []
    for name, module in model.named_modules():
        def hook(_module: nn.Module, _inputs: Any, output: Any, name: str = name) -> None:
            if name not in shapes:
                try:
                    shapes[name] = tuple(output_tensor(output, name).shape[1:])
                except TypeError:
                    shapes[name] = type(output).__name__
        handles.append(module.register_forward_hook(hook))
    image = np.random.default_rng(0).random((1, prep.image_size, prep.image_size), dtype=np.float32)
    model.eval()
    try:
        model(prep(image).to(next(model.parameters(), torch.empty(0)).device))
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, module in model.named_modules():
        shape = shapes.get(name)
        features = int(np.prod(shape)) if isinstance(shape, tuple) else None
        rows.append({"layer": name or "<network>", "type": type(module).__name__,
                     "output_shape": list(shape) if isinstance(shape, tuple) else shape, "features": features})
    return rows


def layer_activations(model: nn.Module, layer: str, images: np.ndarray, prep: Preprocess,
                      batch_size: int = 128, progress: bool = True, dev: torch.device | None = None) -> np.ndarray:
    """``(stimulus, feature)`` float32 activations of module ``layer`` (see :func:`iter_layer_batches`)."""
    return collect(iter_layer_batches(model, layer, images, prep, batch_size, progress, dev), len(images))


def reduce_features(values: np.ndarray, method: str, max_dims: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """At most ``max_dims`` columns: PCA scores, or a Gaussian random projection (1/sqrt(k) scaled,
    so distances are preserved in expectation). A layer with few enough features is kept as is."""
    if method not in ("pca", "random"):
        raise ValueError(f"features.reduce {method!r}; known: {list(REDUCTIONS)}")
    n, p = values.shape
    info: dict[str, Any] = {"reduce": method, "max_dims": max_dims, "original_features": p}
    if p <= max_dims:
        info["reduce"] = "none (layer has no more than max_dims features)"
        return values, info
    if method == "pca":
        from sklearn.decomposition import PCA

        k = min(max_dims, n)
        pca = PCA(n_components=k, svd_solver="full" if n * p <= 5e7 else "randomized", random_state=seed)
        reduced = pca.fit_transform(values.astype(np.float64)).astype(np.float32)
        info["explained_variance"] = float(pca.explained_variance_ratio_.sum())
        return reduced, info
    # The projection matrix is drawn in row chunks so it never exists whole (p x k can exceed the layer).
    generator = torch.Generator().manual_seed(seed)
    reduced = np.zeros((n, max_dims), dtype=np.float64)
    for start in range(0, p, 4096):
        stop = min(start + 4096, p)
        block = torch.randn(stop - start, max_dims, generator=generator, dtype=torch.float64).numpy()
        reduced += values[:, start:stop].astype(np.float64) @ block
    info["random_seed"] = seed
    return (reduced / np.sqrt(max_dims)).astype(np.float32), info


def reduce_batches(batches: Iterator[tuple[int, np.ndarray]], n: int, method: str, max_dims: int | None, seed: int,
                   fit_batches: Iterator[tuple[int, np.ndarray]] | None = None, n_fit: int = 0,
                   spill_dir: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """A layer reduced while its batches arrive (:mod:`neurofit.reduction`): never the whole matrix.

    Returns ``(values, info)``: ``(n, k)`` scores for ``sparse_random`` / ``pca_images`` (fitted on
    ``fit_batches``, the separate image set's activations), or for ``gram`` the ``(n, n)`` Gram matrix
    with ``info["row_mean"]``."""
    from neurofit.reduction import ColumnSpill, SparseRandomProjection, kernel_pca_scores, spill_gram

    first = next(batches)
    p = first[1].shape[1]
    info: dict[str, Any] = {"reduce": method, "original_features": p}
    chained = itertools.chain([first], batches)
    if method == "sparse_random":
        if not max_dims:
            raise ValueError("features.reduce 'sparse_random' needs features.max_dims")
        if p <= max_dims:
            info["reduce"] = "none (layer has no more than max_dims features)"
            return collect(chained, n), info
        projection = SparseRandomProjection(p, int(max_dims), seed)
        info.update(max_dims=int(max_dims), random_seed=seed, density=projection.density)
        return collect(((start, projection(batch)) for start, batch in chained), n), info
    spill = ColumnSpill(n, p, spill_dir)
    fit_spill = None
    try:
        for start, batch in chained:
            spill.write(start, batch)
        if method == "gram":
            gram, _ = spill_gram(spill)
            info.update(n_features=p, row_mean=spill.row_sum / p)
            return gram, info
        if method != "pca_images" or fit_batches is None:
            raise ValueError(f"features.reduce {method!r}; known: {list(REDUCTIONS)} ('pca_images' needs "
                             "features.pca_images)")
        if not max_dims:
            raise ValueError("features.reduce 'pca_images' needs features.max_dims")
        fit_spill = ColumnSpill(n_fit, p, spill_dir, width=spill.width)
        for start, batch in fit_batches:
            fit_spill.write(start, batch)
        fit_gram, cross = spill_gram(fit_spill, spill)
        assert cross is not None
        scores, pca_info = kernel_pca_scores(fit_gram, cross, int(max_dims))
        info.update(max_dims=int(max_dims), **pca_info)
        return scores, info
    finally:
        spill.close()
        if fit_spill is not None:
            fit_spill.close()


def extract_layer(model: nn.Module, layer: str, stimuli: xr.DataArray, image_size: int | Preprocess,
                  batch_size: int = 128, reduce: str | None = None, max_dims: int | None = None,
                  seed: int = 0, fit_images: np.ndarray | None = None, fit_images_name: str = "",
                  spill_dir: str | None = None) -> xr.DataArray | xr.Dataset:
    """Activations of ``layer`` as ``(stimulus, feature)``, aligned to ``stimuli.stimulus_id``; with
    ``reduce: gram`` a Dataset of the Gram matrix ``gram`` (stimulus, stimulus_b) and per-stimulus
    feature means ``row_mean`` instead (what ridge, RSA and CKA need)."""
    prep = image_size if isinstance(image_size, Preprocess) else Preprocess(image_size)
    attrs: dict[str, Any] = {"layer": layer, **{f"preprocess_{k}": v for k, v in asdict(prep).items()},
                             **prep.describe()}
    coords = {"stimulus_id": ("stimulus", stimuli["stimulus_id"].values)}
    if reduce in ("sparse_random", "pca_images", "gram"):
        if reduce == "pca_images" and fit_images is None:
            raise ValueError("features.reduce 'pca_images' needs features.pca_images (the image set PCA is fitted on)")
        batches = iter_layer_batches(model, layer, stimuli.values, prep, batch_size)
        fit_batches = (iter_layer_batches(model, layer, fit_images, prep, batch_size)
                       if fit_images is not None and reduce == "pca_images" else None)
        values, info = reduce_batches(batches, len(stimuli), reduce, max_dims, seed, fit_batches,
                                      len(fit_images) if fit_images is not None else 0, spill_dir)
        if reduce == "pca_images":
            info["pca_images"] = fit_images_name
        row_mean = info.pop("row_mean", None)
        attrs.update(info)
        if reduce == "gram":
            return xr.Dataset({"gram": (("stimulus", "stimulus_b"), values), "row_mean": (("stimulus",), row_mean)},
                              coords=coords, attrs=attrs)
    else:
        values = layer_activations(model, layer, stimuli.values, prep, batch_size)
        # the unflattened map (channel, y, x) that the factorised readout needs; reduced features lose it
        shape = next(row["output_shape"] for row in layer_shapes(model, prep) if row["layer"] == layer)
        if not reduce and isinstance(shape, list) and int(np.prod(shape)) == values.shape[1]:
            attrs["output_shape"] = " ".join(str(d) for d in shape)
        if reduce:
            if not max_dims:
                raise ValueError("features.reduce needs features.max_dims")
            values, info = reduce_features(values, reduce, int(max_dims), seed)
            attrs.update(info)
    return xr.DataArray(values, dims=("stimulus", "feature"), coords=coords, name="features", attrs=attrs)


def read_image_set(path: str) -> np.ndarray:
    """The separate image set a ``pca_images`` reduction is fitted on: a stimuli file (``.nc``, as the
    responses stage writes, e.g. another dataset's ``results/stimuli/<dataset>.nc``) or a folder of
    image files of one size (PNG/JPEG/...), read in name order."""
    from pathlib import Path

    from neurofit.feature_settings import image_set_files

    source = Path(path)
    if source.is_file() and source.suffix == ".nc":
        return xr.load_dataarray(source, engine="h5netcdf").values
    if not source.is_dir():
        raise FileNotFoundError(f"features.pca_images: {path} is neither a stimuli .nc file nor a folder of images")
    from PIL import Image

    files = image_set_files(source)
    if not files:
        raise FileNotFoundError(f"features.pca_images: no image files in {path}")
    images = []
    for file in files:
        with Image.open(file) as image:  # closed at once: a large set would otherwise hold a handle per file
            images.append(np.asarray(image))
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"features.pca_images: the images in {path} differ in size {sorted(shapes)[:3]}; "
                         "resize them to one size")
    return np.stack(images)


def save_features(features: xr.DataArray | xr.Dataset, path: str, **attrs: Any) -> None:
    # netCDF attributes must be strings or numbers (None is not storable).
    features.attrs.update(attrs)
    features.attrs = {k: v if isinstance(v, int | float) and not isinstance(v, bool) else str(v)
                      for k, v in features.attrs.items()}
    features.to_netcdf(path, engine="h5netcdf")
