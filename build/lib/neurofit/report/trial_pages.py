"""The report's pages of the time-resolved comparison: the predictivity table and the recurrent networks (what
each is and how well it does its task), from the ``performance.json`` records the trial_train jobs wrote."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurofit.report.html import page, table, write_table_page

NETWORK_HEADER = ["model", "architecture", "learning rule", "task", "held-out accuracy", "chance", "held-out loss",
                  "held-out trials", "training steps", "optimiser", "lr", "local lr"]


def _rounded(value: Any, digits: int = 3) -> Any:
    return f"{value:.{digits}f}" if isinstance(value, float) else value


def network_row(name: str, record: Mapping[str, Any]) -> list[Any]:
    """One network's row; the reference (the simulator's hidden network) and untrained controls have no training
    settings, so those cells stay empty."""
    return [name, record.get("architecture"), record.get("learning_rule"), record.get("task"),
            _rounded(record.get("accuracy")), _rounded(record.get("chance")), _rounded(record.get("test_loss"), 4),
            record.get("n_test"), record.get("steps"), record.get("optimizer"), record.get("lr"),
            record.get("local_lr")]


def write_networks_page(performance: Mapping[str, str], html_out: str | Path) -> None:
    records = {name: json.loads(Path(path).read_text()) for name, path in performance.items()}
    note = ("<p>Held-out accuracy: the choice in the decision period on trials with their own seed, random timing "
            "and conditions; chance is one over the number of choices. The predictivity table repeats it as "
            "<code>task_accuracy</code>.</p>")
    Path(html_out).parent.mkdir(parents=True, exist_ok=True)
    Path(html_out).write_text(page("Recurrent networks", note + table(
        NETWORK_HEADER, [network_row(name, record) for name, record in records.items()])))


def write_trial_pages(table_path: str | Path, performance: Mapping[str, str], predictivity_html: str | Path,
                      networks_html: str | Path) -> None:
    write_table_page(table_path, predictivity_html, "Time-resolved predictivity: every layer")
    write_networks_page(performance, networks_html)
