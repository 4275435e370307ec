"""Train every model of a config (default: config/examples/grid.yaml) and print each one's held-out
task performance and training time, as a table (and JSON lines with ``--json``).

    python benchmarks/grid_performance.py [config/examples/grid.yaml] [--json out.jsonl]

The pipeline trains the same models through the ``train`` rule; this runs them in one process to
compare them side by side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from neurofit.models.train import ModelSpec, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="config/examples/grid.yaml")
    parser.add_argument("--json", help="also write one JSON object per model here")
    args = parser.parse_args()
    models = yaml.safe_load(Path(args.config).read_text())["models"]
    where = f"cuda: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}; device {where}")
    header = (f"{'model':24s} {'arch':13s} {'objective':10s} {'rule':18s} {'perf metric':14s} {'perf':>6s} "
              f"{'probe':>6s} {'heldout loss':>12s} {'train s':>8s} {'s/epoch':>8s}")
    print(header)
    rows = []
    for name, entry in models.items():
        spec = ModelSpec.from_config(entry)
        _, perf = train(spec)
        per_epoch = perf["seconds_per_epoch"]
        print(f"{name:24s} {spec.architecture:13s} {spec.objective:10s} {spec.learning_rule:18s} "
              f"{perf['performance_metric']:14s} {perf['performance']:6.3f} {perf['probe_accuracy']:6.3f} "
              f"{perf['heldout_loss'] if perf['heldout_loss'] is not None else float('nan'):12.4f} "
              f"{perf['train_seconds']:8.1f} {per_epoch if per_epoch is not None else 0.0:8.2f}", flush=True)
        rows.append({"model": name, **{k: v for k, v in perf.items() if k != "train_loss"},
                     "final_train_loss": perf["train_loss"][-1] if perf["train_loss"] else None})
    if args.json:
        Path(args.json).write_text("".join(json.dumps(row) + "\n" for row in rows))


if __name__ == "__main__":
    main()
