"""Training a network on an offline task; held-out performance saved beside the weights."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from neurofit.models.architectures import build
from neurofit.models.tasks import make_task
from neurofit.models.weights import load_weights, save_weights


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
    n_train: int = 4000
    n_test: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> ModelSpec:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(**{k: v for k, v in entry.items() if k in known},
                   extra={k: v for k, v in entry.items() if k not in known})

    def build(self, num_outputs: int = 8) -> nn.Module:
        return build(self.architecture, num_outputs, self.seed, width=self.width, image_size=self.image_size)


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


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> float:
    model.eval()
    dev = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size]).to(dev)
        pred = model(x).argmax(1).cpu().numpy()
        correct += int((pred == labels[start:start + batch_size]).sum())
    return correct / len(images)


def train(spec: ModelSpec) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or, for ``objective: untrained``, only initialise) a model; returns it on the CPU with
    its held-out performance."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    data = make_task(spec.task, spec.n_train, spec.n_test, spec.image_size, spec.seed)
    model = spec.build(data.num_classes)
    dev = device()
    model.to(dev)
    started = time.perf_counter()
    history: list[float] = []
    if spec.objective == "supervised":
        optimiser = torch.optim.Adam(model.parameters(), lr=spec.lr)
        generator = torch.Generator().manual_seed(spec.seed)
        loss_fn = nn.CrossEntropyLoss()
        x_all = to_input(data.train_images)
        y_all = torch.from_numpy(data.train_labels)
        for epoch in range(spec.epochs):
            model.train()
            order = torch.randperm(len(x_all), generator=generator)
            total = 0.0
            batches = range(0, len(order), spec.batch_size)
            for start in tqdm(batches, desc=f"epoch {epoch + 1}/{spec.epochs}", leave=False):
                idx = order[start:start + spec.batch_size]
                optimiser.zero_grad()
                loss = loss_fn(model(x_all[idx].to(dev)), y_all[idx].to(dev))
                loss.backward()
                optimiser.step()
                total += float(loss) * len(idx)
            history.append(total / len(order))
    elif spec.objective != "untrained":
        raise ValueError(f"unknown objective {spec.objective!r}; known: ['supervised', 'untrained']")
    model.cpu()
    performance = {
        "metric": "accuracy",
        "heldout_accuracy": accuracy(model, data.test_images, data.test_labels),
        "chance": 1.0 / data.num_classes,
        "train_loss": history,
        "train_seconds": time.perf_counter() - started,
        "n_train": spec.n_train,
        "n_test": spec.n_test,
        "device": str(dev),
    }
    return model, performance


def train_model(spec: ModelSpec, weights_path: str | Path, performance_path: str | Path) -> dict[str, Any]:
    """Train and save the weights with the held-out performance beside them (JSON)."""
    model, performance = train(spec)
    save_weights(model, weights_path)
    Path(performance_path).write_text(json.dumps(performance, indent=2))
    return performance


def evaluate_loaded(spec: ModelSpec, weights_in: str | Path, weights_out: str | Path,
                    performance_path: str | Path) -> dict[str, Any]:
    """A model whose weights come from a file: check they fit the architecture, store them as the
    pipeline's copy, and score the held-out task with them."""
    data = make_task(spec.task, 0, spec.n_test, spec.image_size, spec.seed)
    model = load_weights(spec.build(data.num_classes), weights_in)
    performance = {
        "metric": "accuracy",
        "heldout_accuracy": accuracy(model, data.test_images, data.test_labels),
        "chance": 1.0 / data.num_classes,
        "weights_from": str(weights_in),
        "n_test": spec.n_test,
    }
    save_weights(model, weights_out)
    Path(performance_path).write_text(json.dumps(performance, indent=2))
    return performance
