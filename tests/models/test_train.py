"""Training: determinism, the untrained control, held-out performance, resuming from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from models_testutil import TINY, state_hash

from neurofit.models.train import ModelSpec, train, train_model


@pytest.mark.parametrize("objective", ["supervised", "simclr", "autoencoder"])
def test_same_seed_same_weights(objective: str) -> None:
    spec = ModelSpec(architecture="resnet_small", objective=objective, **TINY)
    first, perf = train(spec)
    second, _ = train(spec)
    assert state_hash(first) == state_hash(second)
    assert state_hash(first) != state_hash(spec.build())  # it did train
    assert perf["loss_metric"] == {"supervised": "cross_entropy", "simclr": "nt_xent_loss",
                                   "autoencoder": "reconstruction_mse"}[objective]


def test_untrained_control_is_reproducible_and_seeded(architecture: str) -> None:
    spec = ModelSpec(architecture=architecture, objective="untrained", **TINY)
    a, perf = train(spec)
    b, _ = train(spec)
    c, _ = train(ModelSpec(architecture=architecture, objective="untrained", **{**TINY, "seed": 5}))
    assert state_hash(a) == state_hash(b) == state_hash(spec.build())
    assert state_hash(a) != state_hash(c)
    assert perf["train_loss"] == [] and perf["performance_metric"] == "probe_accuracy"


def test_trained_model_beats_chance_on_heldout() -> None:
    spec = ModelSpec(task="digits", depth=2, width=8, image_size=16, n_train=600, n_test=200, epochs=3, lr=3e-3,
                     batch_size=32)
    _, perf = train(spec)
    assert perf["chance"] == pytest.approx(0.1)
    assert perf["performance_metric"] == "accuracy"
    assert perf["heldout_accuracy"] > 0.6, perf
    assert perf["n_test"] == 200 and perf["seconds_per_epoch"] > 0


def test_self_supervised_reports_own_loss_and_probe(tmp_path: Path) -> None:
    spec = ModelSpec(objective="simclr", **TINY)
    perf = train_model(spec, tmp_path / "w.pt", tmp_path / "performance.json")
    saved = json.loads((tmp_path / "performance.json").read_text())
    assert saved == json.loads(json.dumps(perf))
    assert saved["heldout_accuracy"] is None  # the head is a projection, not a classifier
    assert saved["heldout_loss"] > 0 and 0 <= saved["probe_accuracy"] <= 1
    assert saved["performance"] == saved["probe_accuracy"]
    assert not (tmp_path / "checkpoint.pt").exists()  # removed once the weights are saved


class _Interrupt(Exception):
    pass


def _stop_after_first_epoch(epoch: int) -> None:
    if epoch == 0:
        raise _Interrupt


@pytest.mark.parametrize("objective", ["supervised", "simclr"])
def test_interrupted_run_resumes_from_checkpoint(tmp_path: Path, objective: str) -> None:
    spec = ModelSpec(architecture="cornet_small", objective=objective, **{**TINY, "epochs": 2})
    uninterrupted, full = train(spec)
    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(_Interrupt):
        train(spec, checkpoint=checkpoint, on_epoch=_stop_after_first_epoch)
    assert checkpoint.is_file()
    epochs_run: list[int] = []
    resumed, perf = train(spec, checkpoint=checkpoint, on_epoch=epochs_run.append)
    assert epochs_run == [1]  # only the second epoch ran again
    assert state_hash(resumed) == state_hash(uninterrupted)
    assert perf["train_loss"] == full["train_loss"]


def test_checkpoint_of_other_settings_is_ignored(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(_Interrupt):
        train(ModelSpec(**{**TINY, "epochs": 2}), checkpoint=checkpoint, on_epoch=_stop_after_first_epoch)
    epochs_run: list[int] = []
    other = ModelSpec(**{**TINY, "epochs": 2, "lr": 5e-3})
    resumed, _ = train(other, checkpoint=checkpoint, on_epoch=epochs_run.append)
    assert epochs_run == [0, 1]
    assert state_hash(resumed) == state_hash(train(other)[0])


def test_spec_from_config_keeps_unknown_keys_apart() -> None:
    spec = ModelSpec.from_config({"architecture": "cornet_small", "times": 3, "features": {"reduce": "pca"},
                                  "note": "x"})
    assert spec.times == 3 and spec.extra == {"note": "x"}
    assert spec.build().IT.times == 3
    assert ModelSpec(objective="simclr").output_dim() == 64
    assert ModelSpec(task="digits").output_dim() == 10
