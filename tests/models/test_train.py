"""Training: determinism, the untrained control, held-out performance, resuming from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from models_testutil import TINY, state_hash, stripes_folder

from neurofit.models.objectives import augment_batch
from neurofit.models.train import (
    ModelSpec,
    export_checkpoint,
    recalibrate_batch_norm,
    to_input,
    train,
    train_checkpoints,
    train_model,
)
from neurofit.paths import Layout


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


def test_batch_norm_statistics_are_re_estimated_for_the_final_weights() -> None:
    """After recalibration the network in eval mode computes what it computes in training mode on
    the same images (running statistics = those of the final weights), whatever they were before."""
    model = ModelSpec(architecture="resnet_small", width=4, image_size=16).build()
    images = np.random.default_rng(0).uniform(0, 1, (64, 16, 16)).astype(np.float32)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.fill_(3.0)  # stale statistics, as after fast-moving weights
            module.running_var.fill_(0.1)
    x = to_input(images)
    with torch.no_grad():
        stale = model.eval()(x)
        assert recalibrate_batch_norm(model, images, batch_size=64)
        batch_mode = model.train()(x)
        recalibrated = model.eval()(x)
    assert not torch.allclose(stale, batch_mode, atol=0.1)
    torch.testing.assert_close(recalibrated, batch_mode, atol=0.05, rtol=0.05)  # unbiased vs biased variance
    assert not recalibrate_batch_norm(ModelSpec(width=4, image_size=16).build(), images)  # no batch norm


def test_checkpoints_of_one_run_equal_separate_runs(tmp_path: Path) -> None:
    """Epoch k of one run is the network a run of k epochs gives; each has its own held-out score."""
    spec = ModelSpec(architecture="resnet_small", checkpoints=[0, 1, 2], **{**TINY, "epochs": 2})
    scores = train_checkpoints(spec, tmp_path / "epochs", tmp_path / "checkpoint.pt")
    assert sorted(scores) == [0, 1, 2]
    for epoch in (0, 1, 2):
        saved = json.loads(Path(Layout.epoch_performance(tmp_path / "epochs", epoch)).read_text())
        model, perf = train(ModelSpec(architecture="resnet_small", **{**TINY, "epochs": epoch}))
        weights = torch.load(Layout.epoch_weights(tmp_path / "epochs", epoch), weights_only=True)
        assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items()), epoch
        assert saved["epoch"] == epoch and len(saved["train_loss"]) == epoch
        assert saved["heldout_accuracy"] == perf["heldout_accuracy"] and saved["chance"] == pytest.approx(1 / 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epochs"]  # checkpoint and staging removed
    export_checkpoint(tmp_path / "epochs", 1, tmp_path / "m_e1" / "weights.pt", tmp_path / "m_e1" / "performance.json")
    assert json.loads((tmp_path / "m_e1" / "performance.json").read_text()) == scores[1]


def test_interrupted_checkpoint_run_keeps_the_epochs_it_did(tmp_path: Path) -> None:
    spec = ModelSpec(checkpoints=[0, 1, 2], **{**TINY, "epochs": 2})
    with pytest.raises(_Interrupt):
        train(spec, checkpoint=tmp_path / "checkpoint.pt", on_epoch=_stop_after_first_epoch,
              on_checkpoint=lambda e, m, p: (tmp_path / f"seen{e}").touch())
    assert sorted(p.name for p in tmp_path.glob("seen*")) == ["seen0", "seen1"]
    with pytest.raises(_Interrupt):  # the real writer: snapshots of epochs 0 and 1 are staged, then it stops
        train_checkpoints(spec, tmp_path / "epochs", tmp_path / "run.pt", on_epoch=_stop_after_first_epoch)
    scores = train_checkpoints(spec, tmp_path / "epochs", tmp_path / "run.pt")  # resumes at epoch 1
    fresh = train_checkpoints(spec, tmp_path / "fresh", tmp_path / "fresh.pt")
    assert scores == fresh


def test_bad_checkpoints_and_augment_are_refused() -> None:
    with pytest.raises(ValueError, match="checkpoints"):
        train(ModelSpec(checkpoints=[3], **TINY))
    with pytest.raises(ValueError, match="unknown \\['rotate'\\]"):
        train(ModelSpec(augment=["rotate"], **TINY))
    with pytest.raises(ValueError, match="simclr draws its own"):
        train(ModelSpec(objective="simclr", augment=["flip"], **TINY))


def test_augment_shifts_and_mirrors() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    flips = augment_batch(x, ["flip"], torch.Generator().manual_seed(0))
    for image, out in zip(x, flips, strict=True):
        assert torch.equal(out, image) or torch.equal(out, image.flip(-1))
    crops = augment_batch(x, ["crop"], torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    for image, out in zip(padded, crops, strict=True):  # each crop is an 8 x 8 window of the padded image
        assert any(torch.equal(out, image[:, i:i + 8, j:j + 8]) for i in range(3) for j in range(3))
    assert not torch.equal(crops, x) or not torch.equal(flips, x)


def test_training_on_an_image_folder_with_augmentation(tmp_path: Path) -> None:
    root = stripes_folder(tmp_path / "stripes", per_class=40)
    spec = ModelSpec(task={"image_folder": str(root), "heldout_fraction": 0.25}, augment=["crop", "flip"], depth=2,
                     width=8, image_size=16, epochs=6, lr=3e-3, batch_size=16)
    _, perf = train(spec)
    assert perf["task"] == f"image_folder:{root}" and perf["n_test"] == 30 and perf["augment"] == ["crop", "flip"]
    assert perf["chance"] == pytest.approx(1 / 3)
    assert perf["heldout_accuracy"] > 0.8, perf
    assert perf["train_loss"][-1] < perf["train_loss"][0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_amp_is_ignored_on_the_cpu_and_says_so() -> None:
    model, perf = train(ModelSpec(amp=True, **TINY))
    assert perf["amp"] is None and "ignored on cpu" in perf["amp_note"]
    assert state_hash(model) == state_hash(train(ModelSpec(**TINY))[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mixed precision runs on CUDA only; no GPU here")
@pytest.mark.parametrize("rule", ["backprop", "feedback_alignment", "sign_symmetry"])
def test_amp_trains_on_cuda(rule: str) -> None:
    spec = ModelSpec(task="digits", learning_rule=rule, amp=True, depth=4, norm="batch", width=8, image_size=16,
                     n_train=1400, n_test=300, epochs=3, lr=3e-3, batch_size=32)
    _, perf = train(spec)
    assert perf["amp"] in ("bfloat16", "float16") and perf["device"].startswith("cuda")
    assert perf["heldout_accuracy"] > 0.5 and perf["train_loss"][-1] < perf["train_loss"][0]


def test_batch_norm_net_with_a_last_batch_of_one_image() -> None:
    """A batch of one cannot be batch-normalised: it is left out of training and of the re-estimation."""
    _, perf = train(ModelSpec(norm="batch", **{**TINY, "n_train": 65}))
    assert perf["batch_norm_recalibrated"] and np.isfinite(perf["train_loss"][0])


@pytest.mark.parametrize("architecture", ["alexnet_small", "resnet_small"])  # resnet_small: batch norm recalibrated
def test_training_without_the_heldout_evaluation_gives_the_same_weights(architecture: str) -> None:
    spec = ModelSpec(architecture=architecture, **TINY)
    evaluated, perf = train(spec)
    bare, bare_perf = train(spec, evaluate_heldout=False)
    assert state_hash(bare) == state_hash(evaluated)
    assert bare_perf["train_loss"] == perf["train_loss"]
    assert "probe_accuracy" in perf and not {"probe_accuracy", "heldout_accuracy", "performance"} & set(bare_perf)


def test_training_switches_torch_to_deterministic_kernels_without_importing_dynamo() -> None:
    """Eager kernels are deterministic (warn-only) once ``train`` starts; an evaluation-only job (the
    untrained control) does not import torch._dynamo for it (1.3 s), as torch.use_deterministic_algorithms
    would through torch._inductor.config."""
    import subprocess
    import sys

    probe = ("import sys, torch\nfrom neurofit.models.train import ModelSpec, train\n"
             f"train(ModelSpec(architecture='alexnet_small', objective='untrained', **{TINY!r}))\n"
             "print(torch.are_deterministic_algorithms_enabled(),"
             " torch.is_deterministic_algorithms_warn_only_enabled(), 'torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-3:] == ["True", "True", "False"]


def test_one_classifier_pass_gives_what_the_three_held_out_passes_gave() -> None:
    """evaluate reads the held-out images once: accuracy, the objective's loss and the probe's test features
    equal, to the bit, a batch-by-batch argmax count, heldout_loss and last_features (batches of 256 across a
    partial one)."""
    from neurofit.models.objectives import Objective
    from neurofit.models.train import classifier_pass, heldout_loss, last_features, to_input

    spec = ModelSpec(architecture="alexnet_small", objective="supervised", **{**TINY, "n_test": 300})
    model, _ = train(spec, evaluate_heldout=False)
    data = spec.task_data()
    got = classifier_pass(model, data.test_images, data.test_labels)
    with torch.no_grad():  # the accuracy as evaluate computed it before: argmax of each batch of 256's logits
        correct = sum(int((model(to_input(data.test_images[s:s + 256])).argmax(1).numpy()
                           == data.test_labels[s:s + 256]).sum()) for s in range(0, len(data.test_images), 256))
    assert got[0] == correct / len(data.test_images)
    assert got[1] == heldout_loss(model, Objective("supervised", spec.image_size), data.test_images,
                                  data.test_labels, spec.seed)
    assert np.array_equal(got[2], last_features(model, data.test_images))
