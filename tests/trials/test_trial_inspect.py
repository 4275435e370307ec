"""``neurofit inspect`` on DANDI:000006 proposes a trial-aligned config that validates and reads the file."""

from __future__ import annotations

import yaml

from neurofit import config as nf_config
from neurofit.cli import main
from neurofit.neural.inspect import inspect_source
from neurofit.neural.trials import TrialSpec, read_trial_responses


def test_inspect_000006_proposes_a_trial_config(alm_nwb, repo, capsys):
    report, snippet, _ = inspect_source(str(alm_nwb))
    config = yaml.safe_load(snippet)
    assert "datasets" not in config  # not an image entry
    entry = config["trials"]["datasets"]["000006"]
    responses, task = entry["responses"], entry["task"]
    assert responses["align"] == "cue_start_time" and responses["times"] == "relative"
    assert responses["filter"] == "is_good == 1" and responses["conditions"] == ["type"]
    assert responses["events"] == ["pole_in_time", "pole_out_time"] and responses["window_ms"][0] <= -3000
    assert task["periods"] == {"sample": "pole_in_time", "delay": "pole_out_time", "response": "cue_start_time"}
    assert task["values"] == {"lick left": "left", "lick right": "right"}
    assert entry["regions"] == ["ALM"]
    nf_config.check(config, repo / "workflow" / "schemas" / "config.schema.yaml")
    # The proposal reads the file it was made from.
    settings = {k: v for k, v in responses.items()}
    data, summary = read_trial_responses(alm_nwb, TrialSpec.from_config({**settings, "regions": entry["regions"]}))
    assert summary["kept"] == 166 and set(data["condition"].values) == {"lick left", "lick right"}
    assert main(["inspect", str(alm_nwb)]) == 0
    assert "trial-structured" in capsys.readouterr().out


def test_a_file_with_stimulus_images_keeps_the_image_proposal(small_simulation, simulated_nwb):
    _, snippet, _ = inspect_source(str(simulated_nwb))
    assert "datasets" in yaml.safe_load(snippet) and "trials" not in yaml.safe_load(snippet)
