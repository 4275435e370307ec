"""The models page of the report: for each model what it is, which weights it used (their identity
and digest) and the input it saw, from the ``performance.json`` records the train jobs wrote."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurofit.report.html import page, table

HEADER = ["model", "network", "weights", "weights identity", "parameters", "input", "input from"]


def _identity(record: Mapping[str, Any]) -> str:
    identity = record.get("weights_identity") or {}
    if not identity:  # a built-in network: trained here, or loaded from a file
        return str(record.get("weights_from") or f"trained here ({record.get('objective')}, "
                                                  f"{record.get('learning_rule')})")
    keep = ("weights_name", "url", "hf_hub_id", "tag", "revision", "commit", "file", "sha256", "seed",
            "stripped_prefix", "ignored_tensors")
    return "; ".join(f"{k}: {identity[k]}" for k in keep if identity.get(k) not in (None, ""))


def _input(record: Mapping[str, Any]) -> str:
    prep = record.get("input") or {}
    if not prep:
        return ""
    crop = f"shorter side {prep['resize_size']} px, centre crop " if prep.get("resize_size") else "resized to "
    return (f"{crop}{prep['image_size']} px ({prep.get('interpolation')}); mean {prep.get('mean')}, "
            f"std {prep.get('std')}")


def model_row(name: str, record: Mapping[str, Any]) -> list[Any]:
    named = "source" in record and record.get("source") != "builtin"
    network = f"{record['source']}: {record['network']}" if named else str(record.get("architecture"))
    weights = record.get("weights") if named else record.get("objective")
    origin = (record.get("input") or {}).get("origin", "neurofit built-in: its training input (see features files)")
    return [name, network, weights, _identity(record), record.get("n_parameters"), _input(record), origin]


def write_models_page(performance: Mapping[str, str], html_out: str | Path, json_out: str | Path) -> None:
    """HTML table of every model's provenance, and the records gathered in one JSON file."""
    records = {name: json.loads(Path(path).read_text()) for name, path in performance.items()}
    body = table(HEADER, [model_row(name, record) for name, record in records.items()])
    note = ("<p>Weights identity: the torchvision weights enum and URL, the timm tag and hub repository, the "
            "Hugging Face revision and commit, or the local file, each with the sha256 of the file read where "
            "there is one. Input: what each network was shown (also in every features file's attributes).</p>")
    Path(html_out).parent.mkdir(parents=True, exist_ok=True)
    Path(html_out).write_text(page("Models", note + body))
    Path(json_out).write_text(json.dumps(records, indent=2, default=str))
