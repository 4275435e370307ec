"""Training recurrent networks on trial tasks: backprop through time, RFLO, e-prop, or nothing (untrained control).

``rflo`` is random-feedback local online learning (Murray 2019, eLife 8:e43299) for the leaky vanilla RNN:
each weight keeps a local eligibility trace, ``P_ij <- (1 - a) P_ij + a phi'(u_i) h_j`` (and the same for input
weights with ``x_k`` and for biases with 1), and its update is that trace times the output error sent back
through a fixed random matrix ``B`` (not ``W_out^T``); the readout learns with the delta rule. The traces are
computed forward in time alongside the dynamics (nothing is stored or propagated backwards); the updates
are summed over each trial. Under Dale's law the update of the effective weight is carried to its magnitude.

``eprop`` is symmetric e-prop (Bellec et al. 2020, Nat Commun 11:3625) for the same network: for a leaky rate
unit its eligibility traces are RFLO's, and its learning signal is the output error sent back through the
readout's own weights, ``W_out^T``, as they are at each step (random e-prop is RFLO). Its update is the gradient
of the trial's loss with the recurrent input ``W h_{t-1}`` held fixed: what BPTT would give if no error flowed
back through the recurrent connections (tested).

The optimiser follows the rule (``optimizer: null``): Adam for ``bptt``, plain gradient steps (SGD, no momentum,
``lr`` 0.5) for ``rflo`` and ``eprop``, as Murray applies it. Adam on RFLO's pseudo-gradients kept the delayed
response at chance (and e-prop's): Adam gives every weight a step of about ``lr`` whatever its gradient's size,
so the recurrent and input weights, whose local updates are small and, before the readout aligns with the
feedback, mostly misdirected, were rewritten as fast as the readout (|dW_rec| 6.0 in 300 batches, more than the
initial matrix's 5.8) and the sample's trace through the delay, which a readout alone could read, was lost. Plain
steps keep each update in proportion to its pseudo-gradient (README, learning rules, for the measurements).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from neurofit.models.recurrent import RECURRENT_LAYERS, RecurrentNet
from neurofit.models.trial_tasks import TrialTask, make_trial_task

log = logging.getLogger(__name__)
RECURRENT_RULES = ("bptt", "rflo", "eprop", "none")
LOCAL_RULES = ("rflo", "eprop")  # eligibility traces and a learning signal per step: vanilla RNNs only
RECURRENT_OPTIMIZERS = ("adam", "sgd")
DEFAULT_OPTIMIZER = {"bptt": "adam", "rflo": "sgd", "eprop": "sgd", "none": "adam"}
DEFAULT_LR = {"adam": 1e-2, "sgd": 0.5}  # sgd: Murray's plain steps on the per-trial loss (0.3-1.0 learn; 3 diverges)


@dataclass
class RecurrentSpec:
    """One ``trials.models:`` config entry."""

    architecture: str = "vanilla"
    learning_rule: str = "bptt"
    task: str = "delayed_response"
    task_settings: dict[str, Any] = field(default_factory=dict)
    hidden: int = 64
    dale: bool = False
    dt_ms: float = 50.0
    tau_ms: float = 200.0
    steps: int = 300
    batch_size: int = 32
    optimizer: str | None = None  # None: the rule's own (DEFAULT_OPTIMIZER)
    lr: float | None = None  # None: the optimiser's default (DEFAULT_LR)
    local_lr: float | None = None  # rflo, eprop: learning rate of the local (input, recurrent) updates; None: lr
    seed: int = 0
    n_test: int = 256
    layers: list[str] = field(default_factory=lambda: list(RECURRENT_LAYERS))

    def __post_init__(self) -> None:
        if self.optimizer is None:
            self.optimizer = DEFAULT_OPTIMIZER.get(self.learning_rule, "adam")
        if self.optimizer not in RECURRENT_OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r}: choose one of {RECURRENT_OPTIMIZERS}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]

    @classmethod
    def from_config(cls, settings: dict[str, Any]) -> RecurrentSpec:
        unknown = set(settings) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"trials.models: unknown key(s) {sorted(unknown)}; known: "
                             f"{sorted(cls.__dataclass_fields__)}")
        spec = cls(**settings)
        if spec.learning_rule not in RECURRENT_RULES:
            raise ValueError(f"learning_rule {spec.learning_rule!r}: choose one of {RECURRENT_RULES}")
        if spec.local_lr is not None and spec.learning_rule not in LOCAL_RULES:
            raise ValueError("local_lr is the learning rate of the local updates of rflo and eprop: it needs "
                             "learning_rule: rflo or eprop")
        if spec.learning_rule in LOCAL_RULES and spec.architecture != "vanilla":
            raise ValueError(f"learning_rule: {spec.learning_rule} needs architecture: vanilla (its eligibility "
                             "traces are those of a leaky rate RNN)")
        bad = set(spec.layers) - set(RECURRENT_LAYERS)
        if bad:
            raise ValueError(f"layers {sorted(bad)}: a recurrent network has layers {list(RECURRENT_LAYERS)}")
        return spec

    def make_task(self) -> TrialTask:
        return make_trial_task(self.task, self.task_settings)

    def build(self) -> RecurrentNet:
        task = self.make_task()
        torch.manual_seed(self.seed)
        return RecurrentNet(self.architecture, task.n_inputs, task.n_outputs, self.hidden, self.dale,
                            alpha=min(1.0, self.dt_ms / self.tau_ms))


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _tensors(batch: dict[str, np.ndarray], dev: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(batch["ob"], device=dev), torch.as_tensor(batch["gt"], device=dev),
            torch.as_tensor(batch["mask"], device=dev))


def masked_cross_entropy(logits: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gt.reshape(-1), reduction="none")
    weights = mask.reshape(-1).to(loss.dtype)  # per-step loss weights, summing to 1 per trial
    return (loss * weights).sum() / mask.shape[1]


def local_gradients(net: RecurrentNet, ob: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor,
                    feedback: torch.Tensor | None = None) -> float:
    """Set ``.grad`` of every parameter from the local eligibility traces and the output error sent back through
    ``feedback`` (hidden x outputs): RFLO's fixed random matrix, or ``None`` for e-prop's ``W_out^T``. Returns the
    loss."""
    alpha = net.alpha
    steps, batch, _ = ob.shape
    n = net.hidden
    weight = net.recurrent_weight().detach()
    w_in, b_in = net.input.weight.detach(), net.input.bias.detach()
    w_out, b_out = net.readout.weight.detach(), net.readout.bias.detach()
    if feedback is None:
        feedback = w_out.T  # symmetric e-prop: the readout's own weights carry the error back
    h = torch.zeros(batch, n, device=ob.device)
    trace_rec = torch.zeros(batch, n, n, device=ob.device)
    trace_in = torch.zeros(batch, n, ob.shape[-1], device=ob.device)
    trace_bias = torch.zeros(batch, n, device=ob.device)
    grads = {"rec": torch.zeros_like(weight), "in": torch.zeros_like(w_in), "b_in": torch.zeros_like(b_in),
             "out": torch.zeros_like(w_out), "b_out": torch.zeros_like(b_out)}
    norm = float(batch)  # the step weights sum to 1 per trial
    loss = 0.0
    for t in range(steps):
        u = h @ weight.T + ob[t] @ w_in.T + b_in
        if net.dale:
            phi, dphi = torch.relu(u), (u > 0).to(u.dtype)
        else:
            phi = torch.tanh(u)
            dphi = 1 - phi ** 2
        h_prev = h
        h = (1 - alpha) * h + alpha * phi
        trace_rec = (1 - alpha) * trace_rec + alpha * dphi[:, :, None] * h_prev[:, None, :]
        trace_in = (1 - alpha) * trace_in + alpha * dphi[:, :, None] * ob[t][:, None, :]
        trace_bias = (1 - alpha) * trace_bias + alpha * dphi
        logits = h @ w_out.T + b_out
        m = mask[t].to(ob.dtype)[:, None]
        error = (torch.softmax(logits, -1) - F.one_hot(gt[t], logits.shape[-1]).to(ob.dtype)) * m
        loss += float((F.cross_entropy(logits, gt[t], reduction="none") * mask[t]).sum())
        delta = error @ feedback.T  # (batch, hidden): each unit's learning signal
        grads["rec"] += torch.einsum("bi,bij->ij", delta, trace_rec)
        grads["in"] += torch.einsum("bi,bik->ik", delta, trace_in)
        grads["b_in"] += (delta * trace_bias).sum(0)
        grads["out"] += error.T @ h
        grads["b_out"] += error.sum(0)
    grad_rec = grads["rec"] / norm
    if net.dale:  # W = |V| * sign: dW/dV = sign(V) * sign
        grad_rec = grad_rec * torch.sign(net.recurrent.weight.detach()) * net.dale_sign[None, :]
    net.recurrent.weight.grad = grad_rec
    net.input.weight.grad, net.input.bias.grad = grads["in"] / norm, grads["b_in"] / norm
    net.readout.weight.grad, net.readout.bias.grad = grads["out"] / norm, grads["b_out"] / norm
    return loss / norm


@torch.no_grad()
def evaluate(net: RecurrentNet, task: TrialTask, dt_ms: float, n_trials: int, seed: int) -> dict[str, float]:
    """Held-out trials (their own seed, random timing and conditions): choice accuracy in the decision period."""
    rng = np.random.default_rng(seed)
    dev = next(net.parameters()).device
    correct, total, losses = 0, 0, []
    for start in range(0, n_trials, 64):
        batch = task.batch(min(64, n_trials - start), dt_ms, rng)
        ob, gt, mask = _tensors(batch, dev)
        logits = net(ob)["readout"]
        losses.append(float(masked_cross_entropy(logits, gt, mask)))
        decided = logits[torch.as_tensor(batch["decision"], device=dev)].mean(0)[:, 1:].argmax(-1) + 1
        correct += int((decided.cpu().numpy() == batch["choice"]).sum())
        total += len(batch["choice"])
    return {"accuracy": correct / total, "chance": 1 / (task.n_outputs - 1), "test_loss": float(np.mean(losses)),
            "n_test": total}


def train_recurrent(spec: RecurrentSpec) -> tuple[RecurrentNet, dict[str, Any]]:
    """Train (or, for ``learning_rule: none``, only build) a network; its held-out performance."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one time step is a few tiny matmuls: more CPU threads only add contention
    try:
        return _train(spec)
    finally:
        torch.set_num_threads(threads)


def make_optimiser(spec: RecurrentSpec, net: RecurrentNet) -> torch.optim.Optimizer:
    """Adam, or plain gradient steps (no momentum: RFLO's ``dW = -lr * update`` as Murray 2019 writes it).

    Under RFLO and e-prop the readout (delta rule, exact) steps with ``lr`` and the input and recurrent weights
    (local traces, fed-back error) with ``local_lr``, as Murray's code has one rate per weight group: with 64 units,
    RFLO's steps of 0.5 on the local weights learned the task and then ran away (loss 0.03 at batch 300, 0.98 at
    500)."""
    groups: list[dict[str, Any]] = [{"params": list(net.parameters())}]
    if spec.local_lr is not None:
        readout = [p for name, p in net.named_parameters() if name.startswith("readout.")]
        local = [p for name, p in net.named_parameters() if not name.startswith("readout.")]
        groups = [{"params": readout}, {"params": local, "lr": spec.local_lr}]
    if spec.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr)
    return torch.optim.Adam(groups, lr=spec.lr)


def _train(spec: RecurrentSpec) -> tuple[RecurrentNet, dict[str, Any]]:
    task = spec.make_task()
    dev = device()
    net = spec.build().to(dev)
    rng = np.random.default_rng(spec.seed)
    feedback = None  # e-prop: the readout's own weights (local_gradients); RFLO: a fixed random matrix
    if spec.learning_rule == "rflo":
        feedback_gen = torch.Generator().manual_seed(spec.seed + 7919)
        feedback = (torch.randn(spec.hidden, task.n_outputs, generator=feedback_gen) / spec.hidden ** 0.5).to(dev)
    optimiser = make_optimiser(spec, net)
    losses: list[float] = []
    n_steps = 0 if spec.learning_rule == "none" else spec.steps
    for _ in tqdm(range(n_steps), desc=f"{spec.architecture}/{spec.learning_rule}", mininterval=5):
        ob, gt, mask = _tensors(task.batch(spec.batch_size, spec.dt_ms, rng), dev)
        optimiser.zero_grad()
        if spec.learning_rule == "bptt":
            loss = masked_cross_entropy(net(ob)["readout"], gt, mask)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            losses.append(loss.item())
        else:
            losses.append(local_gradients(net, ob, gt, mask, feedback))
        optimiser.step()
    net.eval()
    performance = {"task": spec.task, "architecture": spec.architecture, "learning_rule": spec.learning_rule,
                   **evaluate(net, task, spec.dt_ms, spec.n_test, spec.seed + 1_000_003),
                   "train_loss": losses[-10:], "steps": n_steps,
                   **({"optimizer": spec.optimizer, "lr": spec.lr, "local_lr": spec.local_lr} if n_steps else {})}
    return net, performance


def save_recurrent(net: RecurrentNet, spec: RecurrentSpec, performance: dict[str, Any], weights_out: str | Path,
                   performance_out: str | Path) -> None:
    for path in (weights_out, performance_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "spec": asdict(spec)}, weights_out)
    Path(performance_out).write_text(json.dumps(performance, indent=2))


def load_recurrent(weights: str | Path) -> tuple[RecurrentNet, RecurrentSpec]:
    saved = torch.load(weights, map_location="cpu", weights_only=True)
    spec = RecurrentSpec.from_config(saved["spec"])
    net = spec.build()
    net.load_state_dict(saved["state_dict"])
    return net.eval(), spec


@torch.no_grad()
def trajectories(net: RecurrentNet, task: TrialTask, conditions: list[str], durations_ms: dict[str, float],
                 dt_ms: float, layers: list[str] | None = None) -> dict[str, np.ndarray]:
    """Noise-free activity of each layer ``(condition, time, units)`` for each condition on one timing."""
    trials = [task.trial(c, durations_ms, dt_ms) for c in conditions]
    ob = torch.as_tensor(np.stack([t.ob for t in trials], 1))
    out = net.cpu()(ob)
    return {name: out[name].permute(1, 0, 2).numpy().astype(np.float64) for name in (layers or RECURRENT_LAYERS)}
