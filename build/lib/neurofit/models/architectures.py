"""Network architectures. Each model exposes its feature blocks as named child modules, in the
order given by :func:`neurofit.models.catalog.layer_names`, so forward hooks find them by name,
and ends in ``head`` (the classifier, or the objective's projection/code layer)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from neurofit.models.catalog import ARCHITECTURES, CORNET_AREAS, arch_param, is_external, layer_names


class _Blocks(nn.Module):
    """Runs the feature blocks in order, then the head."""

    feature_layers: list[str]
    head: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.feature_layers:
            x = getattr(self, name)(x)
        return self.head(x)


def _norm(kind: str | None, channels: int, dims: int) -> list[nn.Module]:
    """The normalisation layer a block gets (none, batch or layer norm over channels)."""
    if kind is None or kind == "none":
        return []
    if kind == "batch":
        return [nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)]
    if kind == "layer":  # GroupNorm with one group: layer norm over channels and positions
        return [nn.GroupNorm(1, channels)]
    raise ValueError(f"unknown norm {kind!r}; known: none, batch, layer")


class AlexNetSmall(_Blocks):
    """An AlexNet-like CNN for small images: ``depth`` conv blocks (pooling after the first two and
    the last), then a fully connected block ``fc``. With ``norm`` each conv and the fc layer are
    followed by batch or layer norm (before the ReLU), which deep nets trained by feedback
    alignment need (Liao et al. 2016)."""

    def __init__(self, num_outputs: int = 8, width: int = 32, image_size: int = 32, depth: int = 4,
                 norm: str | None = None) -> None:
        super().__init__()
        w = width
        self.feature_layers = layer_names("alexnet_small", {"depth": depth})
        channels = [3, w, 2 * w] + [4 * w] * (depth - 2)
        pools = 0
        for i in range(1, depth + 1):
            kernel = 5 if i == 1 else 3
            block: list[nn.Module] = [nn.Conv2d(channels[i - 1], channels[i], kernel, padding=kernel // 2),
                                      *_norm(norm, channels[i], 2), nn.ReLU()]
            if i <= 2 or i == depth:
                block.append(nn.MaxPool2d(2))
                pools += 1
            setattr(self, f"conv{i}", nn.Sequential(*block))
        pooled = min(max(image_size // 2**pools, 1), 2)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(pooled), nn.Flatten(),
                                nn.Linear(channels[-1] * pooled**2, 8 * w), *_norm(norm, 8 * w, 1), nn.ReLU())
        self.head = nn.Linear(8 * w, num_outputs)


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetSmall(_Blocks):
    """A ResNet-style CNN: a conv stem, ``depth`` residual blocks (each after the first halves the
    resolution and doubles the channels, up to 8 x width), global average pooling."""

    def __init__(self, num_outputs: int = 8, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        self.feature_layers = layer_names("resnet_small", {"depth": depth})
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        cin = width
        for i in range(1, depth + 1):
            cout = width * 2 ** min(i - 1, 3)
            setattr(self, f"block{i}", BasicBlock(cin, cout, stride=1 if i == 1 else 2))
            cin = cout
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_outputs)


class CORBlock(nn.Module):
    """One recurrent area (CORnet-RT/S-like): a strided input conv, then ``times`` steps of
    state = ReLU(norm_t(input + recurrent convs(state))); its output is the last state, so a forward
    hook sees the area's activity after the recurrence."""

    def __init__(self, cin: int, cout: int, times: int, depth: int, stride: int) -> None:
        super().__init__()
        self.times = times
        self.conv_input = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm_input = nn.BatchNorm2d(cout)
        layers: list[nn.Module] = []
        for j in range(depth):
            layers.append(nn.Conv2d(cout, cout, 3, padding=1, bias=False))
            if j < depth - 1:
                layers.append(nn.ReLU())
        self.recurrent = nn.Sequential(*layers)
        # Batch norm per time step (as CORnet-S): the statistics of the state change over steps.
        self.norms = nn.ModuleList(nn.BatchNorm2d(cout) for _ in range(times))
        self.relu = nn.ReLU()
        # Parameter-free taps ``t1`` ... ``t<times>``: each unrolled step's state is a layer (``V4.t1``).
        for t in range(1, times + 1):
            setattr(self, f"t{t}", nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drive = self.relu(self.norm_input(self.conv_input(x)))
        state = drive
        for t in range(self.times):
            state = getattr(self, f"t{t + 1}")(self.relu(self.norms[t](drive + self.recurrent(state))))
        return state


class CORnetSmall(_Blocks):
    """A recurrent conv net with areas V1, V2, V4, IT (CORnet-like), unrolled for ``times`` steps
    in each area, then ``decoder`` (global average pooling)."""

    def __init__(self, num_outputs: int = 8, width: int = 32, depth: int = 1, times: int = 2) -> None:
        super().__init__()
        if times < 1:
            raise ValueError(f"cornet_small needs times >= 1, got {times}")
        self.feature_layers = layer_names("cornet_small")
        cin = 3
        for i, area in enumerate(CORNET_AREAS):
            cout = width * 2 ** min(i, 3)
            setattr(self, area, CORBlock(cin, cout, times=times, depth=depth, stride=1 if i == 0 else 2))
            cin = cout
        self.decoder = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_outputs)


def _external(architecture: str, num_outputs: int, layers: list[str] | None) -> nn.Module:
    """A torchvision or timm model, randomly initialised (weights come from a local file, never a download)."""
    library, name = architecture.split(":", 1)
    try:
        if library == "torchvision":
            import torchvision

            model = torchvision.models.get_model(name, weights=None, num_classes=num_outputs)
        else:
            import timm

            model = timm.create_model(name, pretrained=False, num_classes=num_outputs)
    except ImportError as error:
        raise ImportError(f"architecture {architecture!r} needs the optional package {library!r} "
                          f"(pip install 'neurofit[zoo]'): {error}") from error
    model.feature_layers = layer_names(architecture, {"layers": layers})
    modules = dict(model.named_modules())
    missing = [layer for layer in model.feature_layers if layer not in modules]
    if missing:
        raise ValueError(f"architecture {architecture!r} has no modules {missing}; e.g. {list(modules)[1:12]}")
    return model


def build(architecture: str, num_outputs: int, seed: int, **params: Any) -> nn.Module:
    """Build an architecture with weights initialised deterministically from ``seed``."""
    torch.manual_seed(seed)
    width = int(params.get("width") or 32)
    if architecture in ("resnet_small", "cornet_small") and params.get("norm") not in (None, "batch"):
        raise ValueError(f"norm {params['norm']!r}: {architecture} always uses batch norm; norm applies to "
                         "alexnet_small")
    if architecture == "alexnet_small":
        return AlexNetSmall(num_outputs=num_outputs, width=width, image_size=int(params.get("image_size") or 32),
                            depth=arch_param(architecture, params, "depth"), norm=params.get("norm"))
    if architecture == "resnet_small":
        return ResNetSmall(num_outputs=num_outputs, width=width, depth=arch_param(architecture, params, "depth"))
    if architecture == "cornet_small":
        return CORnetSmall(num_outputs=num_outputs, width=width, depth=arch_param(architecture, params, "depth"),
                           times=arch_param(architecture, params, "times"))
    if is_external(architecture):
        return _external(architecture, num_outputs, params.get("layers"))
    raise ValueError(f"unknown architecture {architecture!r}; known: {list(ARCHITECTURES)} or torchvision:/timm:<name>")
