"""Brain region of each unit, from the electrodes' (or the units table's own) ``location``."""

from __future__ import annotations

import re
from typing import Any


def decode(value: Any) -> str:
    """Real files store strings as bytes, sometimes; normalise."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def parse_location(value: Any, key: str = "brain_region") -> str:
    """``'brain_region: ALM; cortical_layer: 5; ...'`` -> ``'ALM'``; a plain name is returned as is."""
    text = decode(value).strip()
    if ":" in text and ";" in text or re.match(r"^\s*\w+\s*:", text):
        fields = dict(
            (part.split(":", 1)[0].strip(), part.split(":", 1)[1].strip())
            for part in text.split(";") if ":" in part
        )
        if key in fields:
            return fields[key]
    return text


def rename_region(region: str, mapping: dict[str, str] | None) -> str:
    """Apply a config map: keys are exact names or regular expressions (full match)."""
    for pattern, target in (mapping or {}).items():
        if region == pattern or re.fullmatch(pattern, region):
            return target
    return region
