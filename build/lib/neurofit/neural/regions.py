"""Brain region of each unit, from the electrodes' (or the units table's own) ``location``."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

KEY_VALUE = re.compile(r"^\s*[\w .-]+\s*:")


def decode(value: Any) -> Any:
    """Real files store strings as bytes, sometimes; normalise bytes to str, leave other values."""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return value


def parse_location(value: Any, key: str = "brain_region") -> str:
    """``'brain_region: ALM; cortical_layer: 5; ...'`` -> ``'ALM'``; a plain name is returned as is.

    A key-value string without ``key`` is returned whole, so that a region is never silently lost."""
    text = str(decode(value)).strip()
    if KEY_VALUE.match(text):
        fields = {}
        for part in text.split(";"):
            if ":" in part:
                name, val = part.split(":", 1)
                fields[name.strip()] = val.strip()
        if key in fields:
            return fields[key]
    return text


def rename_region(region: str, mapping: dict[str, str] | None) -> str:
    """Apply a config map: keys are exact names or regular expressions (full match); a target may use
    the pattern's groups (``'VIS(.*)': 'visual_\\1'``). An exact name wins over patterns; a region that
    two patterns map to different names is an error, so the map's key order never matters (a config
    written back with sorted keys means the same and reruns nothing)."""
    mapping = mapping or {}
    if region in mapping:
        return mapping[region]
    targets: dict[str, str] = {}
    for pattern, target in mapping.items():
        try:
            match = re.fullmatch(pattern, region)
        except re.error:  # a plain name with regex metacharacters, e.g. 'CA1 (left'
            continue
        if match:
            targets[pattern] = match.expand(target)
    if len(set(targets.values())) > 1:
        raise ValueError(f"responses.region_map: region {region!r} matches patterns {list(targets)} that map it to "
                         f"different names {sorted(set(targets.values()))}; make the patterns exclusive")
    return next(iter(targets.values()), region)
