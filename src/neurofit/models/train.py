"""Training a network on a task; held-out performance saved beside the weights.

A run writes a checkpoint beside the weights after every epoch (network, objective parts,
optimiser, random-number states, loss history) and resumes from it when restarted with the same
settings, so an interrupted run ends with the same weights as an uninterrupted one.

With ``checkpoints`` (epochs, 0 = the initial weights) one run also saves the network at each of
those epochs with its own held-out performance: the variants ``<model>_e<epoch>`` that
neurofit.config puts in the DAG as models of their own.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from neurofit.models.architectures import build
from neurofit.models.objectives import AUGMENTATIONS, EMBEDDING_DIM, Objective, augment_batch, classification_loss
from neurofit.models.rules import apply_learning_rule
from neurofit.models.tasks import TaskData, make_task, num_classes, task_label
from neurofit.models.weights import load_checkpoint, load_weights, save_checkpoint, save_weights
from neurofit.paths import Layout

log = logging.getLogger(__name__)

# Settings that do not change what training produces (so a checkpoint stays valid across them).
_NOT_TRAINING = ("layers", "features", "weights", "extra")


@dataclass
class ModelSpec:
    """One ``models:`` config entry."""

    architecture: str = "alexnet_small"
    objective: str = "supervised"
    learning_rule: str = "backprop"
    task: str | dict[str, Any] = "objects"  # a built-in task name, or {image_folder: ...} / {torchvision: ...}
    epochs: int = 2
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    seed: int = 0
    image_size: int = 32
    width: int = 32
    depth: int | None = None  # None: the architecture's default (see catalog.DEFAULTS)
    norm: str | None = None  # alexnet_small: none (default), batch or layer norm after each conv and fc
    times: int | None = None
    num_outputs: int | None = None  # head size; None: the task's classes or the objective's embedding
    n_train: int | None = None  # None: the task's default (4000 objects / digits; every real image)
    n_test: int | None = None  # None: 1000 objects / digits; every held-out real image
    augment: list[str] = field(default_factory=list)  # training-time augmentations: crop, flip
    amp: bool = False  # mixed precision on CUDA (bf16, or fp16 with loss scaling); ignored on the CPU
    checkpoints: list[int] | None = None  # epochs whose weights are saved and scored as variants
    variation_levels: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    clutter: float = 0.35
    layers: list[str] | None = None
    features: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> ModelSpec:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(**{k: v for k, v in entry.items() if k in known},
                   extra={k: v for k, v in entry.items() if k not in known})

    def output_dim(self) -> int:
        if self.num_outputs is not None:
            return int(self.num_outputs)
        if self.objective in ("simclr", "autoencoder"):
            return EMBEDDING_DIM
        return num_classes(self.task)

    def build(self, num_outputs: int | None = None) -> nn.Module:
        """The network (plain modules, whatever the learning rule: weights are rule-independent)."""
        return build(self.architecture, num_outputs or self.output_dim(), self.seed, width=self.width,
                     image_size=self.image_size, depth=self.depth, times=self.times, layers=self.layers,
                     norm=self.norm)

    def task_data(self, n_train: int | None = None) -> TaskData:
        return make_task(self.task, self.n_train if n_train is None else n_train, self.n_test, self.image_size,
                         self.seed, variation_levels=tuple(self.variation_levels), clutter=self.clutter)

    def training_key(self) -> str:
        """The settings that decide the trained weights, as a string stored in the checkpoint."""
        return json.dumps({k: v for k, v in asdict(self).items() if k not in _NOT_TRAINING}, sort_keys=True)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_input(images: np.ndarray) -> torch.Tensor:
    """(n, H, W) grey or (n, 3, H, W) colour, float in [0, 1] or uint8 -> (n, 3, H, W) normalised
    network input."""
    if images.dtype == np.uint8:
        x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0
    else:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if x.ndim == 3:
        x = x[:, None]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x - 0.5) / 0.25


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def heldout_loss(model: nn.Module, objective: Objective, images: np.ndarray, labels: np.ndarray, seed: int,
                 batch_size: int = 256) -> float:
    """The objective's own loss on held-out images (augmentations drawn from a fixed seed)."""
    model.eval()
    objective.eval()
    dev = _model_device(model)
    generator = torch.Generator().manual_seed(seed + 2)
    total = 0.0
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size]).to(dev)
        y = torch.from_numpy(labels[start:start + batch_size]).to(dev)
        total += float(objective.loss(model, x, y, generator)) * len(x)
    return total / len(images)


@torch.no_grad()
def last_features(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Activations of the model's last feature block, flattened (stimulus, feature)."""
    model.eval()
    dev = _model_device(model)
    with _last_block_outputs(model) as out:
        for start in range(0, len(images), batch_size):
            model(to_input(images[start:start + batch_size]).to(dev))
    return np.concatenate(out)


@contextlib.contextmanager
def _last_block_outputs(model: nn.Module) -> Iterator[list[np.ndarray]]:
    """A list that the model's last feature block appends its flattened output to, batch by batch, while
    the block stays inside."""
    module = dict(model.named_modules())[model.feature_layers[-1]]
    out: list[np.ndarray] = []
    handle = module.register_forward_hook(lambda _m, _i, o: out.append(o.flatten(1).cpu().numpy()))
    try:
        yield out
    finally:
        handle.remove()


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> bool:
    """Re-estimate every batch-norm layer's running mean and variance over ``images`` with the
    final weights (a cumulative average, as ``torch.optim.swa_utils.update_bn``). The running
    averages kept during training mix statistics of older weights; when the weights move fast
    (sign symmetry) the network evaluated with them is far worse than the same weights in training
    mode. Returns whether the model has batch norm."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    was_training = model.training
    model.train()
    dev = _model_device(model)
    for start in range(0, len(images), batch_size):
        if len(images) - start > 1:  # batch norm cannot normalise a batch of one image
            model(to_input(images[start:start + batch_size]).to(dev))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return True


@torch.no_grad()
def classifier_pass(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 256
                    ) -> tuple[float, float, np.ndarray]:
    """What :func:`evaluate` reads of a classifier's held-out images, from one forward pass over them rather
    than three (0.3 s each for the default 1000 images on one thread): the accuracy, the mean
    cross-entropy (a classifier objective's :func:`heldout_loss`, batch by batch as it sums it) and
    :func:`last_features` (the probe's test features), each equal to what those functions return."""
    model.eval()
    dev = _model_device(model)
    correct, loss = 0, 0.0
    with _last_block_outputs(model) as features:
        for start in range(0, len(images), batch_size):
            batch = labels[start:start + batch_size]
            logits = model(to_input(images[start:start + batch_size]).to(dev))
            correct += int((logits.argmax(1).cpu().numpy() == batch).sum())
            loss += float(classification_loss(logits, torch.from_numpy(batch).to(dev))) * len(batch)
    return correct / len(images), loss / len(images), np.concatenate(features)


def probe_accuracy(model: nn.Module, data: TaskData, max_train: int = 2000,
                   test_features: np.ndarray | None = None) -> float:
    """Held-out accuracy of a linear (logistic) readout of the last feature block, trained on the
    first ``max_train`` training images: one measure of task performance for every objective.
    ``test_features``: the test images' :func:`last_features`, when the caller has them already."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = min(max_train, len(data.train_images))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=0.1))
    probe.fit(last_features(model, data.train_images[:n]), data.train_labels[:n])
    if test_features is None:
        test_features = last_features(model, data.test_images)
    return float(probe.score(test_features, data.test_labels))


def evaluate(model: nn.Module, objective: Objective | None, spec: ModelSpec, data: TaskData) -> dict[str, Any]:
    """Held-out performance. ``performance`` (the x-axis of performance vs predictivity) is the
    classifier's accuracy for supervised models and the linear-probe accuracy otherwise.
    Without ``objective`` (loaded weights) the held-out loss is the classifier's, if it has one."""
    classifier = spec.objective in ("supervised", "untrained", "reference") and spec.output_dim() == data.num_classes
    if objective is None and classifier:
        objective = Objective("supervised", spec.image_size).to(_model_device(model))
    held_out: tuple[float | None, float | None, np.ndarray | None] = (None, None, None)
    if classifier:  # a classifier's objective is its cross-entropy: one pass gives all three
        held_out = classifier_pass(model, data.test_images, data.test_labels)
    elif objective is not None:
        held_out = (None, heldout_loss(model, objective, data.test_images, data.test_labels, spec.seed), None)
    result: dict[str, Any] = {
        "objective": spec.objective,
        "learning_rule": spec.learning_rule,
        "architecture": spec.architecture,
        "task": task_label(spec.task),
        "heldout_accuracy": held_out[0],
        "heldout_loss": held_out[1],
        "loss_metric": objective.metric if objective is not None else None,
        "probe_accuracy": probe_accuracy(model, data, test_features=held_out[2]),
        "chance": 1.0 / data.num_classes,
        "n_train": len(data.train_images),
        "n_test": len(data.test_images),
    }
    supervised = spec.objective in ("supervised", "reference") and classifier
    result["performance_metric"] = "accuracy" if supervised else "probe_accuracy"
    result["performance"] = result["heldout_accuracy"] if supervised else result["probe_accuracy"]
    return result


def make_optimiser(spec: ModelSpec, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam (the default) or SGD with momentum, with ``lr`` and ``weight_decay``."""
    if spec.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    raise ValueError(f"unknown optimizer {spec.optimizer!r}; known: adam, sgd")


def _amp(spec: ModelSpec, dev: torch.device) -> tuple[torch.dtype | None, str | None]:
    """The autocast dtype (bf16 where the GPU has it, else fp16) and a note for performance.json."""
    if not spec.amp:
        return None, None
    if dev.type != "cuda":
        log.warning("amp: true is ignored on %s: mixed precision here is for CUDA only; training in float32", dev)
        return None, f"amp requested but ignored on {dev.type} (CUDA only): trained in float32"
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dtype, f"mixed precision: torch.autocast({dtype}) on cuda" + (" with loss scaling"
                                                                         if dtype == torch.float16 else "")


def _check_training(spec: ModelSpec) -> None:
    unknown = sorted(set(spec.augment) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"augment: unknown {unknown}; known: {list(AUGMENTATIONS)}")
    if spec.augment and spec.objective == "simclr":
        raise ValueError("augment: simclr draws its own augmented views; leave augment unset for it")
    if spec.checkpoints is not None:
        bad = [e for e in spec.checkpoints if not 0 <= e <= spec.epochs]
        if bad or spec.objective == "untrained":
            raise ValueError(f"checkpoints {spec.checkpoints}: each must be an epoch in 0..epochs ({spec.epochs}) "
                             "of a trained objective")


def deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` for eager kernels, without its import
    of ``torch._inductor.config`` (which imports ``torch._dynamo``: 1.3 s of an evaluation-only job such
    as an untrained model's). That config only steers ``torch.compile``, which neurofit does not use; it
    is set too when something has imported it already. A job that trains imports ``torch._dynamo``
    anyway: every ``torch.optim`` optimiser is built through ``torch._disable_dynamo``."""
    set_mode = getattr(torch._C, "_set_deterministic_algorithms", None)
    if set_mode is None:  # a torch without the private switch: the public call (and its import)
        torch.use_deterministic_algorithms(True, warn_only=True)
        return
    set_mode(True, warn_only=True)
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:
        inductor_config.deterministic = True


def train(spec: ModelSpec, checkpoint: str | Path | None = None,
          on_epoch: Callable[[int], None] | None = None,
          on_checkpoint: Callable[[int, nn.Module, dict[str, Any]], None] | None = None,
          evaluate_heldout: bool = True,
          ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or, for ``objective: untrained``, only initialise) a model by its learning rule;
    returns it on the CPU with its held-out performance. With ``checkpoint``, the state after each
    epoch is saved there and a run with the same settings resumes from it; ``on_epoch(epoch)`` is
    called after each epoch's checkpoint. ``on_checkpoint(epoch, model, performance)`` is called for
    each epoch in ``spec.checkpoints`` (0: before training) with a scored copy of the network
    (batch-norm statistics re-estimated, on the CPU); a resumed run skips the epochs it had done.
    ``evaluate_heldout=False`` leaves out the held-out scores (accuracy, loss, linear probe) of the
    returned performance, for a caller that needs only the network: the weights are the same (the
    evaluation draws from no training random state)."""
    _check_training(spec)
    deterministic_kernels()
    data = spec.task_data()
    model = apply_learning_rule(spec.build(), spec.learning_rule, spec.seed)
    objective = apply_learning_rule(Objective(spec.objective, spec.image_size), spec.learning_rule, spec.seed + 1)
    dev = device()
    model.to(dev)
    objective.to(dev)
    amp_dtype, amp_note = _amp(spec, dev)
    history: list[float] = []
    seconds = 0.0
    wanted = set(spec.checkpoints or [])

    def snapshot(epoch: int) -> None:
        if on_checkpoint is None or epoch not in wanted:
            return
        copied = copy.deepcopy(model)
        if epoch > 0:
            recalibrate_batch_norm(copied, data.train_images)
        performance = evaluate(copied, objective, spec, data)
        performance.update({"epoch": epoch, "train_loss": list(history), "batch_norm_recalibrated": epoch > 0})
        on_checkpoint(epoch, copied.cpu(), performance)

    if spec.objective != "untrained":
        optimiser = make_optimiser(spec, [*model.parameters(), *objective.parameters()])
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        shuffle = torch.Generator().manual_seed(spec.seed)
        views = torch.Generator().manual_seed(spec.seed + 1)  # augmentations (simclr views, augment)
        first = 0
        state = load_checkpoint(checkpoint, spec.training_key()) if checkpoint else None
        if state is not None:
            model.load_state_dict(state["model"])
            objective.load_state_dict(state["objective"])
            optimiser.load_state_dict(state["optimiser"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            shuffle.set_state(state["shuffle_rng"])
            views.set_state(state["views_rng"])
            first, history, seconds = state["epoch"], list(state["history"]), float(state["seconds"])
            log.info("resuming %s from epoch %d (checkpoint %s)", spec.architecture, first, checkpoint)
        else:
            snapshot(0)
        n_images = len(data.train_images)
        y_all = torch.from_numpy(data.train_labels)
        autocast = (torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None
                    else contextlib.nullcontext())
        # Batch norm cannot normalise a batch of one image: such a last batch is left out of the epoch.
        single_ok = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        for epoch in range(first, spec.epochs):
            started = time.perf_counter()
            model.train()
            objective.train()
            order = torch.randperm(n_images, generator=shuffle)
            total, seen = 0.0, 0
            batches = range(0, n_images, spec.batch_size)
            for start in tqdm(batches, desc=f"epoch {epoch + 1}/{spec.epochs}", leave=False):
                idx = order[start:start + spec.batch_size]
                if len(idx) == 1 and not single_ok:
                    continue
                x = to_input(data.train_images[idx.numpy()])
                if spec.augment:
                    x = augment_batch(x, spec.augment, views)
                optimiser.zero_grad()
                with autocast:
                    loss = objective.loss(model, x.to(dev), y_all[idx].to(dev), views)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimiser)
                    scaler.update()
                else:
                    loss.backward()
                    optimiser.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            history.append(total / seen)
            seconds += time.perf_counter() - started
            if checkpoint:
                save_checkpoint(checkpoint, {
                    "training_key": spec.training_key(), "epoch": epoch + 1, "model": model.state_dict(),
                    "objective": objective.state_dict(), "optimiser": optimiser.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "shuffle_rng": shuffle.get_state(), "views_rng": views.get_state(), "history": history,
                    "seconds": seconds,
                })
            snapshot(epoch + 1)
            if on_epoch is not None:
                on_epoch(epoch)
    recalibrated = bool(history) and recalibrate_batch_norm(model, data.train_images)
    performance = evaluate(model, objective, spec, data) if evaluate_heldout else {}
    performance.update({"batch_norm_recalibrated": recalibrated, "train_loss": history, "train_seconds": seconds,
                        "seconds_per_epoch": seconds / len(history) if history else None, "device": str(dev),
                        "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype is not None else None,
                        "augment": list(spec.augment)})
    if amp_note:
        performance["amp_note"] = amp_note
    model.cpu()
    return model, performance


def train_model(spec: ModelSpec, weights_path: str | Path, performance_path: str | Path,
                checkpoint_path: str | Path | None = None) -> dict[str, Any]:
    """Train and save the weights with the held-out performance beside them (JSON); the
    checkpoint (default: beside the weights) is removed once the weights are saved."""
    checkpoint = Path(checkpoint_path) if checkpoint_path else Path(weights_path).with_name("checkpoint.pt")
    model, performance = train(spec, checkpoint=checkpoint)
    save_weights(model, weights_path)
    Path(performance_path).write_text(json.dumps(performance, indent=2))
    checkpoint.unlink(missing_ok=True)
    return performance


def train_checkpoints(spec: ModelSpec, epochs_dir: str | Path, checkpoint_path: str | Path,
                      on_epoch: Callable[[int], None] | None = None) -> dict[int, dict]:
    """One training run that saves the network and its held-out performance at every epoch in
    ``spec.checkpoints`` into ``epochs_dir`` (``Layout.epoch_weights`` / ``epoch_performance``).
    Each snapshot is first written beside the resume checkpoint, so that a resumed run (whose
    output folder Snakemake has cleared) still has the epochs it did before the interruption;
    they move into ``epochs_dir`` when the run ends."""
    if not spec.checkpoints:
        raise ValueError("train_checkpoints needs a `checkpoints` list of epochs")
    checkpoint = Path(checkpoint_path)
    staging = checkpoint.with_name(checkpoint.stem + "_epochs")  # private to this run, like the checkpoint

    def save(epoch: int, model: nn.Module, performance: dict[str, Any]) -> None:
        save_weights(model, Layout.epoch_weights(staging, epoch))
        Path(Layout.epoch_performance(staging, epoch)).write_text(json.dumps(performance, indent=2))

    train(spec, checkpoint=checkpoint, on_epoch=on_epoch, on_checkpoint=save)
    missing = [e for e in spec.checkpoints if not Path(Layout.epoch_weights(staging, e)).is_file()]
    if missing:
        raise RuntimeError(f"{staging}: the snapshots of epochs {missing} are gone (deleted after an interrupted "
                           f"run?); delete {checkpoint} to train again from the start")
    Path(epochs_dir).parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(epochs_dir, ignore_errors=True)
    shutil.move(staging, epochs_dir)
    checkpoint.unlink(missing_ok=True)
    return {e: json.loads(Path(Layout.epoch_performance(epochs_dir, e)).read_text()) for e in spec.checkpoints}


def export_checkpoint(epochs_dir: str | Path, epoch: int, weights_out: str | Path,
                      performance_out: str | Path) -> None:
    """One epoch of a run's snapshots as a model of its own (its weights and performance.json)."""
    for source, target in ((Layout.epoch_weights(epochs_dir, epoch), weights_out),
                           (Layout.epoch_performance(epochs_dir, epoch), performance_out)):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def evaluate_loaded(spec: ModelSpec, weights_in: str | Path, weights_out: str | Path,
                    performance_path: str | Path) -> dict[str, Any]:
    """A model whose weights come from a file: check they fit the architecture, store them as the
    pipeline's copy, and score the held-out task with them."""
    data = spec.task_data(n_train=2000 if spec.n_train is None else min(spec.n_train, 2000))
    model = load_weights(spec.build(), weights_in).to(device())
    performance = evaluate(model, None, spec, data)
    performance["weights_from"] = str(weights_in)
    save_weights(model.cpu(), weights_out)
    Path(performance_path).write_text(json.dumps(performance, indent=2))
    return performance
