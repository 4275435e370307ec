"""Architecture names, their defaults and their feature layers, without importing torch (the
Snakefile reads this at DAG-build time to know which feature files to ask for).

Built-in architectures name their feature blocks here; ``torchvision:<name>`` and ``timm:<name>``
architectures (optional packages) have no fixed block list, so their config entry must list
``layers`` (module names as in ``model.named_modules()``).
"""

from __future__ import annotations

from typing import Any

ARCHITECTURES = ("alexnet_small", "resnet_small", "cornet_small")
EXTERNAL_PREFIXES = ("torchvision:", "timm:")
OBJECTIVES = ("supervised", "simclr", "autoencoder", "untrained")
LEARNING_RULES = ("backprop", "feedback_alignment", "sign_symmetry")

# What ``depth`` means differs by family: conv blocks (alexnet), residual blocks (resnet),
# convolutions inside each recurrent area (cornet). ``times`` is the cornet's recurrent steps.
DEFAULTS: dict[str, dict[str, int]] = {
    "alexnet_small": {"depth": 4},
    "resnet_small": {"depth": 4},
    "cornet_small": {"depth": 1, "times": 2},
}
CORNET_AREAS = ("V1", "V2", "V4", "IT")


def is_external(architecture: str) -> bool:
    return architecture.startswith(EXTERNAL_PREFIXES)


def arch_param(architecture: str, params: dict[str, Any] | None, key: str) -> int:
    """A structural parameter (``depth``, ``times``) from a config entry, or the architecture's default."""
    value = (params or {}).get(key)
    if value is None:
        value = DEFAULTS.get(architecture, {}).get(key, 1)
    return int(value)


def layer_names(architecture: str, params: dict[str, Any] | None = None) -> list[str]:
    """Ordered names of the blocks whose outputs are model features (early to late)."""
    params = params or {}
    if architecture == "alexnet_small":
        depth = arch_param(architecture, params, "depth")
        if depth < 2:
            raise ValueError(f"alexnet_small needs depth >= 2, got {depth}")
        return [f"conv{i}" for i in range(1, depth + 1)] + ["fc"]
    if architecture == "resnet_small":
        depth = arch_param(architecture, params, "depth")
        if depth < 1:
            raise ValueError(f"resnet_small needs depth >= 1, got {depth}")
        return ["stem"] + [f"block{i}" for i in range(1, depth + 1)] + ["avgpool"]
    if architecture == "cornet_small":
        return [*CORNET_AREAS, "decoder"]
    if is_external(architecture):
        if params.get("layers"):
            return list(params["layers"])
        raise ValueError(f"architecture {architecture!r}: external models need a 'layers' list in their config entry")
    raise ValueError(f"unknown architecture {architecture!r}; known: {list(ARCHITECTURES)} or torchvision:/timm:<name>")
