"""Trial-structured cognitive tasks generated offline, in the spirit of neurogym (Molano-Mazon et al. 2022).

neurogym itself pins numpy 2.2 and matplotlib 3.10 (and gymnasium 0.29), which would downgrade this
environment's numpy 2.4 / matplotlib 3.11, so the tasks are written here the way neurogym writes them: a trial
is a sequence of named periods, each period sets the observation channels (``ob``, one row per time step of
``dt_ms``), and the ground truth (``gt``) is the class the network must output at each step (0 = fixate, then
a choice), scored only where ``mask`` is set (the decision period, and fixation before it).

A *condition* names what differs between trials (``'left 0.5'``: the sample side and strength); the timing of
the periods comes separately (``durations_ms``), so the same trial can be laid on the epochs of a recording.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FIXATE = 0


@dataclass(frozen=True)
class Trial:
    ob: np.ndarray  # (time, input)
    gt: np.ndarray  # (time,) class per step
    mask: np.ndarray  # (time,) weight of each step's output in the loss
    choice: int  # the correct choice (class index) of the decision period
    period: np.ndarray  # (time,) name of the period of each step


@dataclass(frozen=True)
class TrialTask:
    """Shared machinery: periods -> time steps; the subclasses say what each period shows."""

    periods: tuple[str, ...] = ()
    durations_ms: dict[str, float] = field(default_factory=dict)
    jitter_ms: dict[str, float] = field(default_factory=dict)
    noise: float = 0.1
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    @property
    def conditions(self) -> list[str]:
        raise NotImplementedError

    def sample_durations(self, rng: np.random.Generator) -> dict[str, float]:
        """Training timing: each period's duration plus a uniform jitter in [0, jitter_ms)."""
        return {p: self.durations_ms[p] + rng.uniform(0, self.jitter_ms.get(p, 0.0)) for p in self.periods}

    def steps(self, durations_ms: dict[str, float], dt_ms: float) -> np.ndarray:
        """The period name of each time step."""
        missing = [p for p in self.periods if p not in durations_ms]
        if missing:
            raise ValueError(f"task periods {missing} have no duration (periods: {list(self.periods)})")
        counts = [max(0, int(round(durations_ms[p] / dt_ms))) for p in self.periods]
        return np.repeat(np.array(self.periods, dtype=object), counts)

    def trial(self, condition: str, durations_ms: dict[str, float], dt_ms: float,
              rng: np.random.Generator | None = None) -> Trial:
        """One trial of ``condition`` laid on ``durations_ms``; observation noise only when ``rng`` is given."""
        if condition not in self.conditions:
            raise ValueError(f"condition {condition!r} is not one of the task's: {self.conditions}")
        period = self.steps(durations_ms, dt_ms)
        ob = np.zeros((len(period), self.n_inputs), np.float32)
        gt = np.zeros(len(period), np.int64)
        mask = np.zeros(len(period), bool)
        choice = self.fill(condition, period, ob, gt, mask)
        mask = balance(mask, period == self.decision_period)
        if rng is not None and self.noise > 0:
            ob += rng.normal(0, self.noise, ob.shape).astype(np.float32)
        return Trial(ob=ob, gt=gt, mask=mask, choice=choice, period=period)

    def fill(self, condition: str, period: np.ndarray, ob: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> int:
        raise NotImplementedError

    def batch(self, n: int, dt_ms: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` noisy trials of random conditions sharing one random timing: arrays ``(time, batch, ...)``."""
        durations = self.sample_durations(rng)
        labels = rng.choice(len(self.conditions), size=n)
        trials = [self.trial(self.conditions[i], durations, dt_ms, rng) for i in labels]
        return {"ob": np.stack([t.ob for t in trials], 1), "gt": np.stack([t.gt for t in trials], 1),
                "mask": np.stack([t.mask for t in trials], 1), "choice": np.array([t.choice for t in trials]),
                "decision": trials[0].period == self.decision_period}

    decision_period: str = "response"


def balance(mask: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """Loss weights: half on the decision steps, half on the others (a short decision period would otherwise be
    outweighed by fixation, and a network learns to fixate long before it learns to choose)."""
    weights = np.zeros(len(mask), np.float32)
    for part in (decision & mask, ~decision & mask):
        if part.any():
            weights[part] = 0.5 / part.sum()
    return weights


def _channel(names: tuple[str, ...], name: str) -> int:
    return names.index(name)


@dataclass(frozen=True)
class DelayedResponse(TrialTask):
    """Tactile delayed response as in DANDI:000006 (Li et al. 2015; Guo et al. 2014): a sample (pole position,
    left or right, at a strength) during ``sample``, withheld through ``delay``, reported after the go cue."""

    periods: tuple[str, ...] = ("fixation", "sample", "delay", "response")
    durations_ms: dict[str, float] = field(default_factory=lambda: {"fixation": 500.0, "sample": 1000.0,
                                                                     "delay": 1500.0, "response": 1000.0})
    jitter_ms: dict[str, float] = field(default_factory=lambda: {"fixation": 300.0, "delay": 500.0})
    strengths: tuple[float, ...] = (1.0,)
    input_names: tuple[str, ...] = ("fixation", "sample_left", "sample_right", "go")
    output_names: tuple[str, ...] = ("fixate", "left", "right")
    decision_period: str = "response"

    @property
    def conditions(self) -> list[str]:
        return [f"{side} {s:g}" if len(self.strengths) > 1 else side
                for side, s in itertools.product(("left", "right"), self.strengths)]

    def fill(self, condition: str, period: np.ndarray, ob: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> int:
        side, *rest = condition.split()
        strength = float(rest[0]) if rest else self.strengths[0]
        response = period == "response"
        ob[~response, _channel(self.input_names, "fixation")] = 1.0
        ob[period == "sample", _channel(self.input_names, f"sample_{side}")] = strength
        ob[response, _channel(self.input_names, "go")] = 1.0
        choice = 1 if side == "left" else 2
        gt[response] = choice
        mask[:] = True
        return choice


@dataclass(frozen=True)
class PerceptualDecision(TrialTask):
    """Random-dot-like perceptual decision (neurogym ``PerceptualDecisionMaking``): two noisy evidence channels
    whose difference is the signed coherence; the choice is reported after the stimulus."""

    periods: tuple[str, ...] = ("fixation", "stimulus", "delay", "decision")
    durations_ms: dict[str, float] = field(default_factory=lambda: {"fixation": 300.0, "stimulus": 1000.0,
                                                                     "delay": 300.0, "decision": 500.0})
    jitter_ms: dict[str, float] = field(default_factory=lambda: {"fixation": 200.0, "delay": 300.0})
    coherences: tuple[float, ...] = (0.064, 0.128, 0.256, 0.512)
    noise: float = 0.5
    input_names: tuple[str, ...] = ("fixation", "evidence_left", "evidence_right")
    output_names: tuple[str, ...] = ("fixate", "left", "right")
    decision_period: str = "decision"

    @property
    def conditions(self) -> list[str]:
        return [f"{side} {c:g}" for side, c in itertools.product(("left", "right"), self.coherences)]

    def fill(self, condition: str, period: np.ndarray, ob: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> int:
        side, coherence = condition.split()
        signed = float(coherence) * (1 if side == "left" else -1)
        decision = period == "decision"
        stimulus = period == "stimulus"
        ob[~decision, _channel(self.input_names, "fixation")] = 1.0
        ob[stimulus, _channel(self.input_names, "evidence_left")] = (1 + signed) / 2
        ob[stimulus, _channel(self.input_names, "evidence_right")] = (1 - signed) / 2
        choice = 1 if side == "left" else 2
        gt[decision] = choice
        mask[:] = True
        return choice


@dataclass(frozen=True)
class DelayedMatchToSample(TrialTask):
    """Delayed match-to-sample (neurogym ``DelayMatchSample``): a sample stimulus, a delay, a test stimulus;
    report match or non-match after the test."""

    periods: tuple[str, ...] = ("fixation", "sample", "delay", "test", "decision")
    durations_ms: dict[str, float] = field(default_factory=lambda: {"fixation": 300.0, "sample": 500.0,
                                                                     "delay": 1000.0, "test": 500.0,
                                                                     "decision": 500.0})
    jitter_ms: dict[str, float] = field(default_factory=lambda: {"fixation": 200.0, "delay": 500.0})
    stimuli: tuple[str, ...] = ("A", "B", "C")
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ("fixate", "match", "non_match")
    decision_period: str = "decision"

    def __post_init__(self) -> None:
        if not self.input_names:
            object.__setattr__(self, "input_names", ("fixation", *(f"stim_{s}" for s in self.stimuli)))

    @property
    def conditions(self) -> list[str]:
        return [f"{a} {b}" for a, b in itertools.product(self.stimuli, self.stimuli)]

    def fill(self, condition: str, period: np.ndarray, ob: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> int:
        sample, test = condition.split()
        decision = period == "decision"
        ob[~decision, _channel(self.input_names, "fixation")] = 1.0
        ob[period == "sample", _channel(self.input_names, f"stim_{sample}")] = 1.0
        ob[period == "test", _channel(self.input_names, f"stim_{test}")] = 1.0
        choice = 1 if sample == test else 2
        gt[decision] = choice
        mask[:] = True
        return choice

    def batch(self, n: int, dt_ms: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # Half the trials match, as in neurogym (uniform over sample x test would make 1 in len(stimuli) match).
        durations = self.sample_durations(rng)
        samples = rng.choice(self.stimuli, size=n)
        match = rng.random(n) < 0.5
        tests = [s if m else rng.choice([t for t in self.stimuli if t != s])
                 for s, m in zip(samples, match, strict=True)]
        trials = [self.trial(f"{s} {t}", durations, dt_ms, rng) for s, t in zip(samples, tests, strict=True)]
        return {"ob": np.stack([t.ob for t in trials], 1), "gt": np.stack([t.gt for t in trials], 1),
                "mask": np.stack([t.mask for t in trials], 1), "choice": np.array([t.choice for t in trials]),
                "decision": trials[0].period == self.decision_period}


TRIAL_TASKS: dict[str, type[TrialTask]] = {
    "delayed_response": DelayedResponse,
    "perceptual_decision": PerceptualDecision,
    "delayed_match_to_sample": DelayedMatchToSample,
}


def make_trial_task(name: str, settings: dict[str, Any] | None = None) -> TrialTask:
    """A task by name with config overrides (``durations_ms``, ``jitter_ms``, ``noise``, ``strengths``, ...)."""
    if name not in TRIAL_TASKS:
        raise ValueError(f"task {name!r} is not a trial task; choose one of {sorted(TRIAL_TASKS)}")
    cls = TRIAL_TASKS[name]
    values = dict(settings or {})
    known = set(cls.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"task {name!r}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    for key in ("strengths", "coherences", "stimuli", "periods"):
        if key in values:
            values[key] = tuple(values[key])
    defaults = cls()
    for key in ("durations_ms", "jitter_ms"):
        if key in values:
            values[key] = {**getattr(defaults, key), **values[key]}
    return cls(**values)
