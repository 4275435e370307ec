"""A recurrent network's layers over time, for the conditions and epochs of a trial dataset.

The dataset gives, per condition, the median time of each task event relative to the alignment event
(``epochs``) and the time bins of its PSTHs; the config says which event starts which task period
(``task.periods: {sample: pole_in_time, delay: pole_out_time, response: cue_start_time}``) and how the
dataset's condition values name the task's conditions (``task.values: {"lick left": left}``). The network is run
noise-free on one trial per condition laid on those epochs, from the trial start (see :func:`task_durations`),
at its own time step; its state at the end of each step is interpolated onto the bin centres.
Result: ``(condition, time, feature)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from neurofit.models.train_recurrent import load_recurrent, trajectories
from neurofit.models.trial_tasks import TrialTask


def task_condition(label: str, values: dict[str, str], separator: str = " | ") -> str:
    """A dataset condition label (``'lick left | 0.5'``) -> the task's (``'left 0.5'``), value by value."""
    return " ".join(str(values.get(part, part)) for part in label.split(separator))


def task_durations(task: TrialTask, period_events: dict[str, str], epochs: dict[str, float],
                   window_s: tuple[float, float]) -> tuple[dict[str, float], float]:
    """Durations (ms) of the task's periods from the events that start them (s from the alignment event), and the
    time (s) the model's trial starts.

    The first period starts at the window start, or earlier when the next period's event comes less than the
    task's own first-period duration after it (the network then settles before the first event); each named period
    starts at its event and ends where the next begins, the last at the window end."""
    for period, event in period_events.items():
        if period not in task.periods:
            raise ValueError(f"task.periods: {period!r} is not a period of the task ({list(task.periods)})")
        if event not in epochs:
            raise ValueError(f"task.periods.{period}: event {event!r} has no time; the dataset records "
                             f"{sorted(epochs)} (responses.events and responses.align)")
    missing = [p for p in task.periods[1:] if p not in period_events]
    if missing:
        raise ValueError(f"task.periods: no event starts period(s) {missing} of the task {list(task.periods)}")
    later = [epochs[period_events[p]] for p in task.periods[1:]]
    first = min(window_s[0], later[0] - task.durations_ms[task.periods[0]] / 1000.0)
    times = [first, *later, window_s[1]]
    if any(b < a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError(f"task.periods: the events {period_events} are not in task order within the window "
                         f"{list(window_s)} s: {dict(zip(task.periods, times, strict=False))}")
    durations = {p: (b - a) * 1000.0 for p, a, b in zip(task.periods, times, times[1:], strict=False)}
    return durations, first


def trial_features(weights: str, conditions: list[str], epochs: dict[str, float], window_s: tuple[float, float],
                   bin_centres: np.ndarray, task_map: dict[str, Any]) -> xr.Dataset:
    """One variable per layer ``(condition, time, feature)`` on the dataset's bins."""
    net, spec = load_recurrent(weights)
    task = spec.make_task()
    values = task_map.get("values", {})
    names = [task_condition(c, values) for c in conditions]
    durations, start = task_durations(task, task_map["periods"], epochs, window_s)
    activity = trajectories(net, task, names, durations, spec.dt_ms, spec.layers)
    steps = next(iter(activity.values())).shape[1]
    step_ends = start + spec.dt_ms / 1000.0 * np.arange(1, steps + 1)
    data = {}
    for layer, values_ in activity.items():
        resampled = np.stack([[np.interp(bin_centres, step_ends, values_[c, :, f]) for f in range(values_.shape[2])]
                              for c in range(values_.shape[0])]).transpose(0, 2, 1)
        data[layer] = (("condition", "time", f"feature_{layer}"), resampled.astype(np.float32))
    return xr.Dataset(data, coords={"condition": np.asarray(conditions, dtype=str), "time": bin_centres,
                                    "task_condition": ("condition", np.asarray(names, dtype=str))},
                      attrs={"task": spec.task, "architecture": spec.architecture,
                             "learning_rule": spec.learning_rule, "dt_ms": spec.dt_ms})
