"""The trial-structured paper configs validate and dry-run offline; an image-only config plans no trial job and a
trials-only config no image job."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate
from snakemake_testutil import planned_jobs

from neurofit import config as nf_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TRIAL_CONFIGS = sorted((REPO / "config" / "paper").glob("trials_*.yaml"))
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def dry_run(workdir: Path, configfile: Path) -> set[str]:
    return set(planned_jobs(workdir, configfile, NO_NETWORK))


def test_there_is_an_offline_and_a_dandi_trial_config():
    assert {p.stem for p in TRIAL_CONFIGS} == {"trials_delayed_response", "trials_alm_000006"}


@pytest.mark.parametrize("path", TRIAL_CONFIGS, ids=[p.stem for p in TRIAL_CONFIGS])
def test_trial_config_validates_and_dry_runs_offline(path, tmp_path):
    config = yaml.safe_load(path.read_text())
    nf_config.check(config, SCHEMA)
    validate(config, str(SCHEMA), set_default=True)
    assert config["results"] == f"results/{path.stem}"
    jobs = dry_run(tmp_path, path)
    assert {"trial_manifest", "trial_responses", "trial_train", "trial_features", "trial_fit", "trial_tables",
            "trial_figures", "trial_report_pages", "trial_data_manifest", "provenance"} <= jobs  # last 3: report pages
    assert not jobs & {"train", "fit", "responses", "figures"}
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_000006_config_pools_alm_sessions_with_the_trial_filter():
    entry = yaml.safe_load((REPO / "config" / "paper" / "trials_alm_000006.yaml").read_text())["trials"]["datasets"]
    alm = entry["alm"]
    assert alm["source"] == "dandi" and alm["dandiset"] == "000006" and len(alm["assets"]) >= 2
    assert alm["responses"]["filter"] == "is_good == 1" and alm["responses"]["align"] == "cue_start_time"
    assert "sub-anm369963/sub-anm369963_ses-20170228.nwb" in alm["assets"]  # the session in shared/data


def test_a_bad_trial_key_is_named(tmp_path):
    config = yaml.safe_load((REPO / "config" / "paper" / "trials_delayed_response.yaml").read_text())
    config["trials"]["datasets"]["sim"]["responses"]["align_column"] = "cue_start_time"
    with pytest.raises(nf_config.ConfigError, match="trials.datasets.sim.responses"):
        nf_config.check(config, SCHEMA)
    del config["trials"]["datasets"]["sim"]["responses"]["align_column"]
    config["trials"]["models"]["rnn_bptt"]["learning_rule"] = "hebbian"
    with pytest.raises(nf_config.ConfigError, match="trials.models.rnn_bptt.learning_rule"):
        nf_config.check(config, SCHEMA)


def test_image_config_plans_no_trial_job(tmp_path):
    jobs = dry_run(tmp_path, REPO / "tests" / "e2e" / "tiny.yaml")
    assert "fit_sim" in jobs and not any(job.startswith("trial_") for job in jobs)
