"""Architecture names, their defaults and their feature layers, without importing torch (the
Snakefile reads this at DAG-build time to know which feature files to ask for).

Built-in architectures name their feature blocks here; ``torchvision:<name>`` and ``timm:<name>``
architectures (optional packages) have no fixed block list, so their config entry must list
``layers`` (module names as in ``model.named_modules()``). Named networks with a ``source``
(:mod:`neurofit.models.zoo`) list explicit layer names too: their module list is only known once the
network is built, which needs torch.

Layer patterns: ``*`` matches within one dotted component, ``**`` across components, ``?`` one
character, so ``layer3.*`` is layer3's blocks (not their convolutions) and ``V4.t*`` every time step.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
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
# ``source:`` of a model entry: builtin (the architectures above, trained by neurofit) or a named network.
SOURCES = ("builtin", "torchvision", "timm", "transformers", "module")
GLOB_CHARS = "*?["


def source_of(entry: dict[str, Any]) -> str:
    return str(entry.get("source") or "builtin")


def is_named_network(entry: dict[str, Any]) -> bool:
    """A model entry naming a torchvision/timm/transformers/module network (scored, not trained here)."""
    return source_of(entry) != "builtin"


def is_pattern(layer: str) -> bool:
    return any(c in layer for c in GLOB_CHARS)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for part in re.split(r"(\*\*|\*|\?)", pattern):
        out.append({"**": ".*", "*": "[^.]*", "?": "[^.]"}.get(part, re.escape(part)))
    return re.compile("".join(out) + r"\Z")


def close_matches(name: str, names: Iterable[str], n: int = 6) -> list[str]:
    names = [x for x in names if x]
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    return close or [x for x in names if x.startswith(name.split(".")[0])][:n]


def match_layers(patterns: Sequence[str], names: Sequence[str], key: str = "layers") -> list[str]:
    """Layer names (in ``names`` order for a pattern, as given otherwise) that ``patterns`` select;
    an unknown name or a pattern matching nothing raises, naming ``key`` and close matches."""
    chosen: list[str] = []
    known = set(names)
    for pattern in patterns:
        if is_pattern(pattern):
            regex = _pattern_regex(pattern)
            hits = [x for x in names if x and regex.match(x)]
        else:
            hits = [pattern] if pattern in known else []
        if not hits:
            raise ValueError(f"{key}: {pattern!r} matches no layer; close matches: {close_matches(pattern, names)} "
                             f"(`neurofit layers <config> <model>` lists them all)")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


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


def selectable_layers(architecture: str, params: dict[str, Any] | None = None) -> list[str]:
    """Names a built-in architecture's ``layers`` may select: its feature blocks and, for the
    recurrent cornet_small, each unrolled time step of each area (``V4.t1`` ... ``V4.t<times>``)."""
    names = layer_names(architecture, params)
    if architecture == "cornet_small":
        times = arch_param(architecture, params, "times")
        steps = [f"{area}.t{t}" for area in CORNET_AREAS for t in range(1, times + 1)]
        return [*CORNET_AREAS, *steps, "decoder"]
    return names
