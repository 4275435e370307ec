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
    """Apply a config map: keys are exact names or regular expressions (full match), tried in order;
    a target may use the pattern's groups (``'VIS(.*)': 'visual_\\1'``)."""
    for pattern, target in (mapping or {}).items():
        if region == pattern:
            return target
        try:
            match = re.fullmatch(pattern, region)
        except re.error:  # a plain name with regex metacharacters, e.g. 'CA1 (left'
            continue
        if match:
            return match.expand(target)
    return region
