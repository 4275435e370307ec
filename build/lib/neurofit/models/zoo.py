"""Networks named by source and name: torchvision, timm, Hugging Face transformers or a user's
module (``package.module:callable``), with pretrained, random or local-file weights, and the input
each was trained on, read from the network's own metadata.

``prepare`` runs once per model (the ``train`` rule): it fetches or loads the weights, checks the
layers, and returns the network with a provenance record (weights identity and digest, input size
and statistics, what rebuilds the architecture offline). ``rebuild`` makes the architecture again
from that record without any download, for the features jobs, which then load the pipeline's copy of
the weights.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from neurofit.models.catalog import SOURCES, close_matches, match_layers, source_of
from neurofit.models.weights import WeightsError, file_digest, load_state_into, read_state_dict

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's ImageNet evaluation transform, for networks whose library states no input.
DEFAULT_INPUT = {"image_size": 224, "resize_size": 256, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                 "interpolation": "bilinear", "normalisation": "imagenet"}
PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


class ZooError(ValueError):
    """A named network that cannot be built or loaded; the message names the config key."""


@dataclass(frozen=True)
class NamedNetwork:
    """One ``models:`` entry with a ``source`` other than ``builtin``."""

    name: str
    source: str
    network: str
    weights: str
    seed: int = 0
    model_class: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, name: str, entry: dict[str, Any]) -> NamedNetwork:
        source = source_of(entry)
        if source not in SOURCES or source == "builtin":
            raise ZooError(f"models.{name}.source: {source!r} is not a network library; known: {list(SOURCES[1:])}")
        for key in ("network", "weights"):
            if not entry.get(key):
                raise ZooError(f"models.{name}.{key}: required for source {source!r}")
        return cls(name=name, source=source, network=str(entry["network"]), weights=str(entry["weights"]),
                   seed=int(entry.get("seed", 0)), model_class=entry.get("model_class"),
                   options=dict(entry.get("network_options") or {}), input=dict(entry.get("input") or {}),
                   layers=tuple(entry.get("layers") or ()))

    def key(self, name: str) -> str:
        return f"models.{self.name}.{name}"

    @property
    def kind(self) -> str:
        """pretrained, random or file."""
        if self.weights == "pretrained" or self.weights.startswith("pretrained:"):
            return "pretrained"
        return "random" if self.weights == "random" else "file"

    @property
    def tag(self) -> str | None:
        return self.weights.split(":", 1)[1] if self.weights.startswith("pretrained:") else None


@dataclass
class Prepared:
    model: nn.Module
    input: dict[str, Any]  # keyword arguments of neurofit.features.Preprocess
    record: dict[str, Any]  # provenance, written to performance.json


def _import(module: str, net: NamedNetwork) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as error:  # a broken install (torchvision beside another torch) raises more than ImportError
        raise ZooError(f"{net.key('source')}: {net.source} does not import here ({type(error).__name__}: {error}); "
                       f"install it for this torch: pip install 'neurofit[zoo]' or 'neurofit[transformers]'") from error


def _download_error(net: NamedNetwork, what: str, where: str, error: Exception) -> ZooError:
    return ZooError(f"{net.key('weights')}: {what} is not in the local cache and could not be fetched "
                    f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Put it at {where} "
                    f"(run the same config once on a machine with network and copy the cache folder), "
                    f"or save the weights to a .safetensors file and give its path as `weights`")


# -- torchvision ----------------------------------------------------------------------------------
def _torchvision(net: NamedNetwork, pretrained: bool) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    tv = _import("torchvision", net)
    try:
        builder = tv.models.get_model_builder(net.network)
    except ValueError as error:
        raise ZooError(f"{net.key('network')}: torchvision has no model {net.network!r}; close matches: "
                       f"{close_matches(net.network, tv.models.list_models())}") from error
    try:
        enum = tv.models.get_model_weights(net.network)
    except (ValueError, KeyError):
        enum = None
    weights = None
    if enum is not None:
        tag = net.tag or "DEFAULT"
        try:
            weights = enum[tag]
        except KeyError as error:
            raise ZooError(f"{net.key('weights')}: torchvision {net.network} has no weights {tag!r}; known: "
                           f"{[w.name for w in enum]}") from error
    identity: dict[str, Any] = {}
    if pretrained:
        if weights is None:
            raise ZooError(f"{net.key('weights')}: torchvision {net.network} has no pretrained weights")
        file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
        try:
            model = builder(weights=weights, **net.options)
        except Exception as error:
            raise _download_error(net, f"torchvision weights {type(weights).__name__}.{weights.name} ({weights.url})",
                                  f"{file} (TORCH_HOME sets the folder)", error) from error
        identity = {"weights_name": f"{type(weights).__name__}.{weights.name}", "url": weights.url,
                    "file": str(file), "sha256": file_digest(file) if file.is_file() else None}
    else:
        model = builder(weights=None, **net.options)
    if weights is not None:  # the weights' own evaluation transform (metadata: no download)
        transform = weights.transforms()
        prep = {"image_size": int(transform.crop_size[0]), "resize_size": int(transform.resize_size[0]),
                "mean": tuple(transform.mean), "std": tuple(transform.std),
                "interpolation": getattr(transform.interpolation, "value", "bilinear"), "normalisation": "imagenet",
                "origin": f"torchvision {type(weights).__name__}.{weights.name}.transforms()"}
    else:
        prep = {**DEFAULT_INPUT, "origin": "torchvision ImageNet default (the model has no weights enum)"}
    return model, prep, identity


# -- timm -----------------------------------------------------------------------------------------
def _timm(net: NamedNetwork, pretrained: bool) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    timm = _import("timm", net)
    name = f"{net.network}.{net.tag}" if net.tag else net.network
    if not timm.is_model(name.split(".")[0]):
        raise ZooError(f"{net.key('network')}: timm has no model {net.network!r}; close matches: "
                       f"{close_matches(net.network, timm.list_models())}")
    try:
        model = timm.create_model(name, pretrained=pretrained, **net.options)
    except Exception as error:
        if not pretrained:
            raise ZooError(f"{net.key('network')}: timm could not build {name!r}: {error}") from error
        cfg = timm.create_model(name, pretrained=False, **net.options).pretrained_cfg
        repo = cfg.get("hf_hub_id") or cfg.get("url") or name
        raise _download_error(net, f"timm weights of {name} ({repo})", f"{_hf_cache()} (HF_HOME / HF_HUB_CACHE)",
                              error) from error
    identity: dict[str, Any] = {}
    if pretrained:
        cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
        identity = {"weights_name": name, "hf_hub_id": cfg.get("hf_hub_id"), "tag": cfg.get("tag"),
                    **_hf_cached_file(cfg.get("hf_hub_id"), "model.safetensors", None)}
    config = timm.data.resolve_data_config({}, model=model)
    size = int(config["input_size"][-1])
    crop_pct = float(config.get("crop_pct") or 1.0)
    prep = {"image_size": size, "resize_size": int(size / crop_pct), "mean": tuple(config["mean"]),
            "std": tuple(config["std"]), "interpolation": _interpolation(config.get("interpolation")),
            "normalisation": "timm data config", "origin": f"timm resolve_data_config of {name}"}
    return model, prep, identity


# -- Hugging Face transformers ----------------------------------------------------------------------
def _hf_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return os.path.join(os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub")


def _hf_cached_file(repo: str | None, filename: str, revision: str | None) -> dict[str, Any]:
    if not repo:
        return {}
    if Path(repo).is_dir():
        path: Any = Path(repo) / filename
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(repo, filename, revision=revision)
        except Exception:  # the digest is provenance only; an unreadable cache must not fail the run
            return {}
    if isinstance(path, str | Path) and Path(path).is_file():
        return {"file": str(path), "sha256": file_digest(path)}
    return {}


def _model_class(tf: Any, net: NamedNetwork) -> Any:
    name = net.model_class or "AutoModel"
    cls = getattr(tf, name, None)
    if cls is None:
        raise ZooError(f"{net.key('model_class')}: transformers has no class {name!r}; e.g. AutoModel, "
                       f"CLIPVisionModel, Dinov2Model")
    return cls


def _from_config(cls: Any, config: Any) -> nn.Module:
    return cls.from_config(config) if cls.__name__.startswith("Auto") else cls(config)


def _transformers(net: NamedNetwork, pretrained: bool) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    tf = _import("transformers", net)
    cls = _model_class(tf, net)
    where = f"{_hf_cache()}/models--{net.network.replace('/', '--')} (HF_HOME / HF_HUB_CACHE set the folder)"
    if net.network.endswith("Config") and "/" not in net.network:
        config_class = getattr(tf, net.network, None)
        if config_class is None:
            raise ZooError(f"{net.key('network')}: transformers has no {net.network!r}; close matches: "
                           f"{close_matches(net.network, [n for n in dir(tf) if n.endswith('Config')])}")
        if pretrained:
            raise ZooError(f"{net.key('weights')}: {net.network} is an architecture without weights; name a "
                           f"Hugging Face model id (e.g. microsoft/resnet-50) for pretrained weights")
        config = config_class(**net.options)
        model = _from_config(cls, config)
        size = getattr(config, "image_size", 224)
        size = int(size if isinstance(size, int) else size[0])
        prep = {"image_size": size, "resize_size": None, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                "interpolation": "bilinear", "normalisation": "imagenet",
                "origin": f"default for a network built from {net.network} (no image processor): {size} px square, "
                          f"ImageNet mean/std"}
        return model, prep, {}
    try:
        if pretrained:
            model = cls.from_pretrained(net.network, revision=net.tag, **net.options)
        else:
            config = tf.AutoConfig.from_pretrained(net.network, revision=net.tag, **net.options)
            model = _from_config(cls, config)
        processor = tf.AutoImageProcessor.from_pretrained(net.network, revision=net.tag)
    except Exception as error:
        if isinstance(error, ZooError):
            raise
        what = f"Hugging Face model {net.network!r}" + (f" (revision {net.tag})" if net.tag else "")
        raise _download_error(net, what, where, error) from error
    if "pixel_values" not in inspect.signature(model.forward).parameters:
        raise ZooError(f"{net.key('model_class')}: {type(model).__name__} does not take images (pixel_values); "
                       f"name its vision model, e.g. CLIPVisionModel")
    identity: dict[str, Any] = {}
    if pretrained:
        identity = {"weights_name": net.network, "revision": net.tag,
                    "commit": getattr(model.config, "_commit_hash", None),
                    **_hf_cached_file(net.network, "model.safetensors", net.tag)}
    return model, {**processor_input(processor), "origin": f"{type(processor).__name__} of {net.network}"}, identity


def _size_value(size: Any, key: str) -> int | None:
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return int(value) if value else None


def processor_input(processor: Any) -> dict[str, Any]:
    """Preprocess settings from a Hugging Face image processor: shortest-edge resize then centre crop
    (ConvNeXT's ``crop_pct``, CLIP/DINOv2's ``crop_size``), or a square resize (ViT)."""
    size = getattr(processor, "size", None) or {}
    crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    shortest = _size_value(size, "shortest_edge")
    height = _size_value(size, "height")
    crop_height = _size_value(crop, "height") if crop else None
    if shortest:
        crop_pct = getattr(processor, "crop_pct", None)
        if crop_height:
            image_size, resize = crop_height, shortest
        elif crop_pct and shortest < 384:
            image_size, resize = shortest, int(shortest / crop_pct)
        elif crop_pct:  # ConvNeXT at 384 px and above: a square resize, no crop
            image_size, resize = shortest, None
        else:
            image_size, resize = shortest, shortest
    else:
        image_size = height or 224
        resize = image_size if crop_height else None
        image_size = crop_height or image_size
    normalise = getattr(processor, "do_normalize", True)
    mean = tuple(processor.image_mean) if normalise else (0.0, 0.0, 0.0)
    std = tuple(processor.image_std) if normalise else (1.0, 1.0, 1.0)
    return {"image_size": int(image_size), "resize_size": resize, "mean": mean, "std": std,
            "interpolation": _interpolation(getattr(processor, "resample", None)), "normalisation": "image processor"}


def _interpolation(value: Any) -> str:
    """A PIL resample code, torchvision InterpolationMode or name -> bilinear / bicubic / nearest."""
    value = getattr(value, "value", value)
    if isinstance(value, int):
        return PIL_RESAMPLE.get(value, "bilinear")
    name = str(value or "bilinear").lower()
    return next((n for n in ("bicubic", "nearest", "bilinear") if n in name), "bilinear")


# -- a user's module --------------------------------------------------------------------------------
def _module(net: NamedNetwork, pretrained: bool) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    module_name, _, attr = net.network.partition(":")
    if not module_name or not attr:
        raise ZooError(f"{net.key('network')}: {net.network!r} is not package.module:callable")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ZooError(f"{net.key('network')}: cannot import {net.network!r}: {error}") from error
    model = factory(**net.options)
    if not isinstance(model, nn.Module):
        raise ZooError(f"{net.key('network')}: {net.network} returned {type(model).__name__}, not a torch nn.Module")
    prep = {**DEFAULT_INPUT, "origin": "ImageNet default (a module states no input; set `input` to change it)"}
    return model, prep, {"weights_name": f"{net.network} as returned"} if pretrained else {}


BUILDERS = {"torchvision": _torchvision, "timm": _timm, "transformers": _transformers, "module": _module}


def _input(net: NamedNetwork, prep: dict[str, Any]) -> dict[str, Any]:
    """The library's input settings with the entry's ``input`` overrides."""
    overrides = {"size": "image_size", "resize": "resize_size", "mean": "mean", "std": "std",
                 "interpolation": "interpolation"}
    given = {overrides[k]: v for k, v in net.input.items() if k in overrides}
    if not given:
        return prep
    out = {**prep, **given, "origin": f"{prep['origin']}, with {net.key('input')} {net.input}"}
    for key in ("mean", "std"):
        out[key] = tuple(out[key])
    if "mean" in given:
        out["normalisation"] = "config input"
    return out


def prepare(net: NamedNetwork) -> Prepared:
    """The network with its weights (pretrained, random from ``seed``, or a local file) and its record."""
    torch.manual_seed(net.seed)
    model, prep, identity = BUILDERS[net.source](net, net.kind == "pretrained")
    if net.kind == "file":
        path = Path(net.weights)
        try:
            loaded = load_state_into(model, read_state_dict(path, net.key("weights")), f"{net.key('weights')} {path}")
        except WeightsError as error:
            raise ZooError(str(error)) from error
        identity = {"file": str(path.resolve()), "sha256": file_digest(path), "bytes": path.stat().st_size, **loaded}
    elif net.kind == "random":
        identity = {"seed": net.seed, "init": "the library's own initialisation under torch.manual_seed(seed)"}
    model.eval()
    layers = check_layers(model, net.layers, net.key("layers")) if net.layers else []
    record = {
        "name": net.name, "source": net.source, "network": net.network, "model_class": net.model_class,
        "network_options": net.options, "weights": net.weights, "weights_kind": net.kind,
        "weights_identity": identity, "n_parameters": sum(p.numel() for p in model.parameters()),
        "input": {k: list(v) if isinstance(v, tuple) else v for k, v in _input(net, prep).items()},
        "layers": layers, "rebuild": _rebuild_info(model),
    }
    return Prepared(model, record["input"], record)


def check_layers(model: nn.Module, layers: Any, key: str) -> list[str]:
    """Explicit layer names (or patterns) resolved against ``model.named_modules()``."""
    try:
        return match_layers(list(layers), [name for name, _ in model.named_modules()], key)
    except ValueError as error:
        raise ZooError(str(error)) from error


def _rebuild_info(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):  # a transformers model: its config rebuilds it offline
        return {"config_class": type(config).__name__, "config": config.to_dict(), "model_class": type(model).__name__}
    return {}


def rebuild(net: NamedNetwork, record: dict[str, Any]) -> nn.Module:
    """The architecture of a prepared network, randomly initialised and without any download (the
    caller loads the pipeline's copy of the weights into it)."""
    info = record.get("rebuild") or {}
    if info.get("config_class"):
        tf = _import("transformers", net)
        config = getattr(tf, info["config_class"]).from_dict(info["config"])
        return _from_config(getattr(tf, info["model_class"]), config).eval()
    if net.source == "torchvision":
        return _import("torchvision", net).models.get_model(net.network, weights=None, **net.options).eval()
    if net.source == "timm":
        name = f"{net.network}.{net.tag}" if net.tag else net.network
        return _import("timm", net).create_model(name, pretrained=False, **net.options).eval()
    return BUILDERS[net.source](net, False)[0].eval()


def for_listing(net: NamedNetwork) -> Prepared:
    """The network with random weights (shapes do not depend on weights, so nothing is downloaded
    but a Hugging Face model's small config and processor files)."""
    return prepare(replace(net, weights="random", layers=()))
