"""Training a network on an offline task; held-out performance saved beside the weights.

A run writes a checkpoint beside the weights after every epoch (network, objective parts,
optimiser, random-number states, loss history) and resumes from it when restarted with the same
settings, so an interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from neurofit.models.architectures import build
from neurofit.models.objectives import EMBEDDING_DIM, Objective
from neurofit.models.rules import apply_learning_rule
from neurofit.models.tasks import NUM_CLASSES, TaskData, make_task
from neurofit.models.weights import load_checkpoint, load_weights, save_checkpoint, save_weights

log = logging.getLogger(__name__)

# Settings that do not change what training produces (so a checkpoint stays valid across them).
_NOT_TRAINING = ("layers", "features", "weights", "extra")


@dataclass
class ModelSpec:
    """One ``models:`` config entry."""

    architecture: str = "alexnet_small"
    objective: str = "supervised"
    learning_rule: str = "backprop"
    task: str = "objects"
    epochs: int = 2
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    image_size: int = 32
    width: int = 32
    depth: int | None = None  # None: the architecture's default (see catalog.DEFAULTS)
    times: int | None = None
    num_outputs: int | None = None  # head size; None: the task's classes or the objective's embedding
    n_train: int = 4000
    n_test: int = 1000
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
        if self.task not in NUM_CLASSES:
            raise ValueError(f"unknown task {self.task!r}; known: {list(NUM_CLASSES)}")
        return NUM_CLASSES[self.task]

    def build(self, num_outputs: int | None = None) -> nn.Module:
        """The network (plain modules, whatever the learning rule: weights are rule-independent)."""
        return build(self.architecture, num_outputs or self.output_dim(), self.seed, width=self.width,
                     image_size=self.image_size, depth=self.depth, times=self.times, layers=self.layers)

    def task_data(self, n_train: int | None = None) -> TaskData:
        return make_task(self.task, self.n_train if n_train is None else n_train, self.n_test, self.image_size,
                         self.seed, variation_levels=tuple(self.variation_levels), clutter=self.clutter)

    def training_key(self) -> str:
        """The settings that decide the trained weights, as a string stored in the checkpoint."""
        return json.dumps({k: v for k, v in asdict(self).items() if k not in _NOT_TRAINING}, sort_keys=True)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_input(images: np.ndarray) -> torch.Tensor:
    """(n, H, W) grayscale in [0, 1] -> (n, 3, H, W) normalised network input."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if x.ndim == 3:
        x = x[:, None]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x - 0.5) / 0.25


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> float:
    model.eval()
    dev = _model_device(model)
    correct = 0
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size]).to(dev)
        pred = model(x).argmax(1).cpu().numpy()
        correct += int((pred == labels[start:start + batch_size]).sum())
    return correct / len(images)


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
    module = dict(model.named_modules())[model.feature_layers[-1]]
    out: list[np.ndarray] = []
    handle = module.register_forward_hook(lambda _m, _i, o: out.append(o.flatten(1).cpu().numpy()))
    try:
        for start in range(0, len(images), batch_size):
            model(to_input(images[start:start + batch_size]).to(dev))
    finally:
        handle.remove()
    return np.concatenate(out)


def probe_accuracy(model: nn.Module, data: TaskData, max_train: int = 2000) -> float:
    """Held-out accuracy of a linear (logistic) readout of the last feature block, trained on the
    first ``max_train`` training images: one measure of task performance for every objective."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = min(max_train, len(data.train_images))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=0.1))
    probe.fit(last_features(model, data.train_images[:n]), data.train_labels[:n])
    return float(probe.score(last_features(model, data.test_images), data.test_labels))


def evaluate(model: nn.Module, objective: Objective | None, spec: ModelSpec, data: TaskData) -> dict[str, Any]:
    """Held-out performance. ``performance`` (the x-axis of performance vs predictivity) is the
    classifier's accuracy for supervised models and the linear-probe accuracy otherwise.
    Without ``objective`` (loaded weights) the held-out loss is the classifier's, if it has one."""
    classifier = spec.objective in ("supervised", "untrained", "reference") and spec.output_dim() == data.num_classes
    if objective is None and classifier:
        objective = Objective("supervised", spec.image_size).to(_model_device(model))
    result: dict[str, Any] = {
        "objective": spec.objective,
        "learning_rule": spec.learning_rule,
        "architecture": spec.architecture,
        "task": spec.task,
        "heldout_accuracy": accuracy(model, data.test_images, data.test_labels) if classifier else None,
        "heldout_loss": heldout_loss(model, objective, data.test_images, data.test_labels, spec.seed)
        if objective is not None else None,
        "loss_metric": objective.metric if objective is not None else None,
        "probe_accuracy": probe_accuracy(model, data),
        "chance": 1.0 / data.num_classes,
        "n_train": len(data.train_images),
        "n_test": len(data.test_images),
    }
    supervised = spec.objective in ("supervised", "reference") and classifier
    result["performance_metric"] = "accuracy" if supervised else "probe_accuracy"
    result["performance"] = result["heldout_accuracy"] if supervised else result["probe_accuracy"]
    return result


def train(spec: ModelSpec, checkpoint: str | Path | None = None,
          on_epoch: Callable[[int], None] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or, for ``objective: untrained``, only initialise) a model by its learning rule;
    returns it on the CPU with its held-out performance. With ``checkpoint``, the state after each
    epoch is saved there and a run with the same settings resumes from it; ``on_epoch(epoch)`` is
    called after each epoch's checkpoint."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    data = spec.task_data()
    model = apply_learning_rule(spec.build(), spec.learning_rule, spec.seed)
    objective = apply_learning_rule(Objective(spec.objective, spec.image_size), spec.learning_rule, spec.seed + 1)
    dev = device()
    model.to(dev)
    objective.to(dev)
    history: list[float] = []
    seconds = 0.0
    if spec.objective != "untrained":
        optimiser = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=spec.lr)
        shuffle = torch.Generator().manual_seed(spec.seed)
        views = torch.Generator().manual_seed(spec.seed + 1)  # augmentations (simclr)
        first = 0
        state = load_checkpoint(checkpoint, spec.training_key()) if checkpoint else None
        if state is not None:
            model.load_state_dict(state["model"])
            objective.load_state_dict(state["objective"])
            optimiser.load_state_dict(state["optimiser"])
            shuffle.set_state(state["shuffle_rng"])
            views.set_state(state["views_rng"])
            first, history, seconds = state["epoch"], list(state["history"]), float(state["seconds"])
            log.info("resuming %s from epoch %d (checkpoint %s)", spec.architecture, first, checkpoint)
        x_all = to_input(data.train_images)
        y_all = torch.from_numpy(data.train_labels)
        for epoch in range(first, spec.epochs):
            started = time.perf_counter()
            model.train()
            objective.train()
            order = torch.randperm(len(x_all), generator=shuffle)
            total = 0.0
            batches = range(0, len(order), spec.batch_size)
            for start in tqdm(batches, desc=f"epoch {epoch + 1}/{spec.epochs}", leave=False):
                idx = order[start:start + spec.batch_size]
                optimiser.zero_grad()
                loss = objective.loss(model, x_all[idx].to(dev), y_all[idx].to(dev), views)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(idx)
            history.append(total / len(order))
            seconds += time.perf_counter() - started
            if checkpoint:
                save_checkpoint(checkpoint, {
                    "training_key": spec.training_key(), "epoch": epoch + 1, "model": model.state_dict(),
                    "objective": objective.state_dict(), "optimiser": optimiser.state_dict(),
                    "shuffle_rng": shuffle.get_state(), "views_rng": views.get_state(), "history": history,
                    "seconds": seconds,
                })
            if on_epoch is not None:
                on_epoch(epoch)
    performance = evaluate(model, objective, spec, data)
    performance.update({"train_loss": history, "train_seconds": seconds,
                        "seconds_per_epoch": seconds / len(history) if history else None, "device": str(dev)})
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


def evaluate_loaded(spec: ModelSpec, weights_in: str | Path, weights_out: str | Path,
                    performance_path: str | Path) -> dict[str, Any]:
    """A model whose weights come from a file: check they fit the architecture, store them as the
    pipeline's copy, and score the held-out task with them."""
    data = spec.task_data(n_train=min(spec.n_train, 2000))
    model = load_weights(spec.build(), weights_in).to(device())
    performance = evaluate(model, None, spec, data)
    performance["weights_from"] = str(weights_in)
    save_weights(model.cpu(), weights_out)
    Path(performance_path).write_text(json.dumps(performance, indent=2))
    return performance
