"""``neurofit inspect`` on trial-structured files (DANDI:000006-like): a ``trials:`` entry instead of an image one.

A file is trial-structured when it has a ``trials`` table with event-time columns (``*_time`` other than
``start_time`` / ``stop_time``) and no stimulus images. The proposal aligns on the go cue (a column named like
``cue`` or ``go``, else the last event), says whether event times are relative to the trial start (as in 000006)
or absolute, takes categorical columns (2-12 values, e.g. ``type``, ``response``) as conditions, keeps
``is_good == 1`` trials when the column exists, places the window around the events, and maps the events, in
time order, onto the delayed-response task's sample, delay and response periods when there are three.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml

TASK_PERIODS = ("sample", "delay", "response")
GOOD_COLUMNS = ("is_good", "good_trial", "valid")


def _numbers(values: list[Any]) -> np.ndarray:
    return np.array([v for v in values if isinstance(v, int | float) and not isinstance(v, bool)], dtype=float)


def trial_structure(report: dict[str, Any]) -> dict[str, Any] | None:
    """The ``responses`` and ``task`` blocks for a trial-structured file (None when it is not one), and notes."""
    trials = report["intervals"].get("trials")
    if trials is None or report["stimulus_templates"]:
        return None
    columns = trials["columns"]
    events = [c for c, info in columns.items()
              if c.endswith("_time") and c not in ("start_time", "stop_time") and info["dtype"].startswith("float")]
    if not events:
        return None
    notes = []
    align = next((c for c in events if "cue" in c or "go" in c), events[-1])
    starts = _numbers(columns.get("start_time", {}).get("values", []))
    first = {c: _numbers(columns[c]["values"]) for c in events}
    relative = bool(len(starts)) and all(len(v) and np.nanmax(v) < np.nanmin(starts) for v in first.values())
    kind = "relative to start_time" if relative else "absolute"
    notes.append(f"trials: aligned on {align!r}; event times look {kind} (from the first rows)")
    offsets = {}
    for event in events:
        n = min(len(first[event]), len(first[align]))
        if n:
            offsets[event] = float(np.nanmedian(first[event][:n] - first[align][:n]))
    ordered = sorted(offsets, key=offsets.get)
    earliest = min(offsets.values(), default=0.0)
    window = [int(np.floor((earliest - 0.5) * 2) * 500), 1500]
    conditions = [c for c, info in columns.items()
                  if info["dtype"] == "str" and 2 <= info["n_unique"] <= 12 and c not in events]
    responses: dict[str, Any] = {"table": "trials", "align": align, "times": "relative" if relative else "absolute",
                                 "events": [e for e in ordered if e != align], "window_ms": window, "bin_ms": 50,
                                 "conditions": conditions[:1] or ["CONDITION_COLUMN"]}
    if len(conditions) > 1:
        notes.append(f"trials: other condition columns: {conditions[1:]} (add them to conditions to split further)")
    good = next((c for c in GOOD_COLUMNS if c in columns), None)
    if good:
        responses["filter"] = f"{good} == 1"
    if (report.get("units") or {}).get("unsorted_spike_times"):
        responses["unsorted_spike_times"] = "sort"
    if len(ordered) == len(TASK_PERIODS):
        task = {"periods": dict(zip(TASK_PERIODS, ordered, strict=True))}
    else:
        task = {"periods": {p: "EVENT_COLUMN" for p in TASK_PERIODS}}
        notes.append(f"trials: {len(ordered)} events; map them onto the task's periods by hand")
    if conditions:
        values = columns[conditions[0]]["values"]
        seen = next(((v, w) for v in values for w in ("left", "right") if isinstance(v, str) and w in v), None)
        if seen:  # 'lick right' seen: 'lick left' -> left, 'lick right' -> right
            task["values"] = {seen[0].replace(seen[1], w): w for w in ("left", "right")}
            notes.append("trials: condition values mapped to the task's by the words left/right (check the rest)")
    return {"responses": responses, "task": task, "notes": notes}


def trial_config_snippet(report: dict[str, Any], name: str, entry: dict[str, Any],
                         entry_notes: list[str] | None = None) -> str | None:
    """YAML for ``trials: datasets:`` (and a model to compare), or None when the file is not trial-structured."""
    structure = trial_structure(report)
    if structure is None:
        return None
    regions = list((report.get("units") or {}).get("regions", {})) or ["REGION"]
    dataset = {**entry, "regions": regions, "responses": structure["responses"], "task": structure["task"]}
    config = {"trials": {"datasets": {name: dataset},
                         "models": {"rnn_bptt": {"architecture": "vanilla", "learning_rule": "bptt",
                                                 "task": "delayed_response"}}}}
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    notes = ["a trial-structured file: a `trials:` entry (time-resolved, workflow/rules/trials.smk)",
             *(entry_notes or []), *structure["notes"]]
    return "".join(f"# {note}\n" for note in notes) + text


def propose(report: dict[str, Any], image_snippet: str, source: str, dandi: dict[str, Any] | None = None,
            asset_path: str | None = None) -> str:
    """The trial snippet for a trial-structured file, else the image one unchanged."""
    from neurofit.neural.inspect import _dataset_entry

    name, entry, notes = _dataset_entry(source, dandi, asset_path)
    return trial_config_snippet(report, name, entry, notes) or image_snippet
