"""Architecture names and their feature layers, without importing torch (the Snakefile reads this
at DAG-build time to know which feature files to ask for)."""

from __future__ import annotations

from typing import Any

ARCHITECTURES = ("alexnet_small",)


def layer_names(architecture: str, params: dict[str, Any] | None = None) -> list[str]:
    """Ordered names of the blocks whose outputs are model features (early to late)."""
    params = params or {}
    if architecture == "alexnet_small":
        return ["conv1", "conv2", "conv3", "conv4", "fc"]
    raise ValueError(f"unknown architecture {architecture!r}; known: {list(ARCHITECTURES)}")
