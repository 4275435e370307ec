"""The cost model's GPU terms (``neurofit.cost_model.GpuTerms``), measured: each GPU stage's work on CUDA
against the same work on the CPU threads a laptop job gets, and the CUDA start every GPU job pays.

    python benchmarks/bench_gpu.py --out gpu.json       # on a machine with CUDA (benchmarks/device_check.sh)
    python benchmarks/bench_gpu.py --devices cpu        # the CPU half alone (runs anywhere; no terms)

Each device is measured in a fresh interpreter (the CPU one with ``CUDA_VISIBLE_DEVICES=""`` and the
threads the pipeline's jobs get: 1 for features and fits, 2 for training), wall seconds, best of
``--repeats``, on the config's own shapes (``bench_cost_model``'s unit costs):

- ``epoch`` and ``train``: one training epoch of the config's first trained model, and its train job
  without epochs (task images, evaluation, saving);
- ``features``: one forward pass of the first dataset's stimuli through each scored model (mean);
- ``fit``: one fit job per distinct layer size and metric (mean; ``encoding.backend: auto`` runs torch on
  CUDA where there is a GPU, numpy where not);
- with ``--field``, shapes of the field's networks: a ResNet-50 (transformers' ``ResNetConfig``, random
  weights: built offline) over 128 images at 224 px (``features_resnet50``), and a ridge fit job of 640
  stimuli x 25,088 features x 300 neuroids in 3 regions (``fit_wide``).

and in this process the CUDA start: a fresh interpreter that creates the CUDA context, less one that
imports torch. The speed-up of a stage is its CPU wall seconds over its CUDA wall seconds; the terms
printed and written to ``--out`` (JSON) are ``GpuTerms(train=epoch, features, fit, start)``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cost_model as unit_costs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIELD_IMAGES, FIELD_FIT = 128, (640, 25088, 300)


def best(repeats: int, measure) -> float:
    return float(min(measure() for _ in range(repeats)))


def stage_seconds(config: dict, configfile: Path, device: str, repeats: int, field: bool) -> dict[str, float]:
    """Wall seconds of each unit of work on ``device`` (this interpreter's only device)."""
    import torch
    from threadpoolctl import threadpool_limits

    from neurofit import config as nf_config

    clock = time.perf_counter
    name = next(d for d in sorted(config["datasets"]) if config["datasets"][d].get("source") == "simulated")
    stimuli, neuroids, regions = unit_costs.simulated_shape(config, name)
    models = [m for m in nf_config.scored_models(config)
              if not str(nf_config.model_settings(config, m).get("weights", "")).startswith("simulated:")]
    out: dict[str, float] = {}
    torch.set_num_threads(1)
    with threadpool_limits(1):
        out["features"] = float(np.mean([best(repeats, lambda m=m: unit_costs.forward_seconds(
            config, m, stimuli, device, clock)) for m in models]))
        sizes = sorted({p for m in models for p in unit_costs.layer_sizes(config, configfile, m)})
        fits = []
        for metric in config["encoding"]["metrics"]:
            unit_costs.fit_seconds(metric, stimuli, (16, "4 2 2"), neuroids, regions, config["encoding"])  # imports
            fits += [best(repeats, lambda p=p, k=metric: unit_costs.fit_seconds(
                k, stimuli, p, neuroids, regions, config["encoding"], clock)) for p in sizes]
        out["fit"] = float(np.mean(fits))
        if field:
            out.update(field_seconds(device, repeats, config["encoding"]))
    torch.set_num_threads(2)
    with threadpool_limits(2), tempfile.TemporaryDirectory() as tmp:
        trained = [m for m in nf_config.trained_models(config) if m in models
                   and nf_config.model_settings(config, m).get("objective") != "untrained"]
        if trained:
            base = best(repeats, lambda: unit_costs.train_seconds(config, trained[0], 0, Path(tmp))[1])
            one = best(repeats, lambda: unit_costs.train_seconds(config, trained[0], 1, Path(tmp))[1])
            out["train"], out["epoch"] = base, max(one - base, 1e-9)
    return out


def field_seconds(device: str, repeats: int, encoding: dict) -> dict[str, float]:
    """A ResNet-50's forward pass (random weights) and a wide ridge fit job, on ``device``."""
    from neurofit.features import Preprocess
    from neurofit.models.zoo import NamedNetwork, prepare

    net = NamedNetwork.from_config("resnet50", {"source": "transformers", "network": "ResNetConfig",
                                                "weights": "random"})
    prepared = prepare(net)
    network, prep = prepared.model.to(device), Preprocess(**prepared.input)
    images = np.random.default_rng(0).random((FIELD_IMAGES, 224, 224, 3), dtype=np.float32)
    n, p, t = FIELD_FIT
    return {
        "features_resnet50": best(repeats, lambda: unit_costs.batched_forward_seconds(
            network, prep, images, device, time.perf_counter, batch=64)),
        "fit_wide": best(repeats, lambda: unit_costs.fit_seconds(
            "ridge", n, (p, ""), t, ["R0", "R1", "R2"], {**encoding, "backend": "auto"}, time.perf_counter)),
    }


def cuda_start(repeats: int) -> float:
    """Wall seconds a fresh interpreter takes to create the CUDA context, less one that imports torch."""
    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    context = best(repeats, lambda: run("import torch; torch.zeros(1, device='cuda'); torch.cuda.synchronize()"))
    return max(context - best(repeats, lambda: run("import torch")), 0.0)


def child(device: str, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {})}
    command = [sys.executable, __file__, "--child", device, "--configfile", str(args.configfile),
               "--repeats", str(args.repeats), *(["--field"] if args.field else [])]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{device} measurement failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--field", action="store_true", help="also a ResNet-50 and a 25,088-feature ridge fit")
    parser.add_argument("--out", type=Path, default=None, help="write the measurements and terms as JSON")
    parser.add_argument("--child", choices=["cpu", "cuda"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = yaml.safe_load(args.configfile.read_text())
    if args.child:
        import torch

        if args.child == "cuda" and not torch.cuda.is_available():
            raise SystemExit("--devices cuda: torch sees no CUDA device here")
        print(json.dumps(stage_seconds(config, args.configfile, args.child, args.repeats, args.field)))
        return 0
    measured = {device: child(device, args) for device in args.devices}
    result: dict[str, object] = {"config": str(args.configfile), "wall_seconds": measured}
    print(f"{'unit of work':<20}" + "".join(f"{d + ' s':>12}" for d in measured) + ("   speed-up" if
                                                                                       len(measured) == 2 else ""))
    for unit in measured[args.devices[0]]:
        values = [measured[d].get(unit, float("nan")) for d in measured]
        ratio = f"{values[0] / values[1]:>11.2f}" if len(values) == 2 else ""
        print(f"{unit:<20}" + "".join(f"{v:>12.3f}" for v in values) + ratio)
    if set(measured) == {"cpu", "cuda"}:
        cpu, cuda = measured["cpu"], measured["cuda"]
        terms = {"train": cpu["epoch"] / cuda["epoch"], "features": cpu["features"] / cuda["features"],
                 "fit": cpu["fit"] / cuda["fit"], "start": cuda_start(args.repeats)}
        result["gpu_terms"] = terms
        print("GpuTerms(" + ", ".join(f"{k}={v:.3g}" for k, v in terms.items()) + ")")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
