"""The time-resolved report pages: the networks page from the trial_train records, the predictivity page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from neurofit.report.trial_pages import NETWORK_HEADER, network_row, write_trial_pages

TRAINED = {"task": "delayed_response", "architecture": "vanilla", "learning_rule": "rflo", "accuracy": 0.998046875,
           "chance": 0.5, "test_loss": 0.02712345, "n_test": 256, "train_loss": [0.1, 0.03], "steps": 300,
           "optimizer": "sgd", "lr": 0.5, "local_lr": None}
REFERENCE = {"task": "delayed_response", "architecture": "vanilla", "learning_rule": "reference", "accuracy": 1.0,
             "chance": 0.5, "test_loss": 0.0125, "n_test": 256}


def cells(html: str) -> list[list[str]]:
    return [re.findall(r"<t[dh]>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", html)]


def test_a_trained_network_row_names_its_rule_accuracy_and_rates():
    row = dict(zip(NETWORK_HEADER, network_row("rnn_rflo", TRAINED), strict=True))
    assert row["learning rule"] == "rflo" and row["held-out accuracy"] == "0.998" and row["chance"] == "0.500"
    assert row["held-out loss"] == "0.0271" and row["training steps"] == 300
    assert row["optimiser"] == "sgd" and row["lr"] == 0.5 and row["local lr"] is None


def test_pages_list_every_network_and_every_table_row(tmp_path: Path):
    performance = {}
    for name, record in (("reference", REFERENCE), ("rnn_rflo", TRAINED)):
        performance[name] = str(tmp_path / f"{name}.json")
        Path(performance[name]).write_text(json.dumps(record))
    table = pd.DataFrame({"model": ["reference", "rnn_rflo"], "metric": ["psth_ridge"] * 2, "score": [0.91234, 0.5],
                          "task_accuracy": [1.0, 0.998046875]})
    table.to_csv(tmp_path / "predictivity.csv", index=False)
    write_trial_pages(tmp_path / "predictivity.csv", performance, tmp_path / "predictivity.html",
                      tmp_path / "networks.html")
    networks = cells((tmp_path / "networks.html").read_text())
    assert networks[0] == NETWORK_HEADER
    assert [r[0] for r in networks[1:]] == ["reference", "rnn_rflo"]
    assert networks[1][NETWORK_HEADER.index("training steps")] == ""  # the simulator's network is not trained here
    assert networks[2][NETWORK_HEADER.index("held-out accuracy")] == "0.998"
    rows = cells((tmp_path / "predictivity.html").read_text())
    assert rows[0] == list(table.columns) and rows[1] == ["reference", "psth_ridge", "0.912", "1.000"]
