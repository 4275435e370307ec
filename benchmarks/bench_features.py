"""Feature extraction and training speed per architecture (and learning rule), printed.

    python benchmarks/bench_features.py [--images 512] [--width 16] [--image-size 32]

Feature extraction: images per second through ``neurofit.features.layer_activations`` for each
architecture's every block, against a naive peer in the same process (a full forward pass with a
hook that keeps the layer, concatenating batches), on the CPU and on CUDA when present.
Training: seconds per epoch of each architecture under each learning rule, as a ratio to backprop.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neurofit.features import Preprocess, layer_activations
from neurofit.images import render_objects
from neurofit.models.catalog import ARCHITECTURES, LEARNING_RULES, layer_names
from neurofit.models.train import ModelSpec, train


@torch.no_grad()
def naive_activations(model: torch.nn.Module, layer: str, images: np.ndarray, prep: Preprocess,
                      dev: torch.device, batch_size: int) -> np.ndarray:
    out: list[torch.Tensor] = []
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda _m, _i, o: out.append(o.flatten(1).cpu()))
    for start in range(0, len(images), batch_size):
        model(prep(images[start:start + batch_size]).to(dev))
    handle.remove()
    return torch.cat(out).numpy()


def timed(fn, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def bench_features(images: np.ndarray, width: int, size: int, dev: torch.device) -> None:
    prep = Preprocess(size)
    print(f"\nfeature extraction on {dev} ({len(images)} images {size}x{size}, width {width}, batch 128)")
    print(f"{'architecture':14s} {'layer':8s} {'features':>8s} {'img/s':>9s} {'naive img/s':>11s} {'ratio':>6s}")
    for architecture in ARCHITECTURES:
        model = ModelSpec(architecture=architecture, width=width, image_size=size).build().to(dev).eval()
        layer_activations(model, layer_names(architecture)[0], images[:128], prep, progress=False, dev=dev)
        for layer in layer_names(architecture):
            ours = timed(lambda m=model, k=layer: layer_activations(m, k, images, prep, progress=False, dev=dev))
            naive = timed(lambda m=model, layer=layer: naive_activations(m, layer, images, prep, dev, 128))
            n_features = layer_activations(model, layer, images[:2], prep, progress=False, dev=dev).shape[1]
            print(f"{architecture:14s} {layer:8s} {n_features:8d} {len(images) / ours:9.0f} "
                  f"{len(images) / naive:11.0f} {naive / ours:6.2f}")


def bench_training(width: int, size: int, n_train: int) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"\ntraining on {device}: seconds per epoch (supervised, {n_train} images {size}x{size}, width {width}, "
          f"batch 64), ratio to backprop")
    print(f"{'architecture':14s} " + " ".join(f"{rule:>20s}" for rule in LEARNING_RULES))
    for architecture in ARCHITECTURES:
        seconds = {}
        for rule in LEARNING_RULES:
            spec = ModelSpec(architecture=architecture, learning_rule=rule, width=width, image_size=size,
                             n_train=n_train, n_test=64, epochs=2)
            _, perf = train(spec)
            seconds[rule] = perf["train_seconds"] / 2
        print(f"{architecture:14s} " + " ".join(
            f"{seconds[rule]:9.2f}s ({seconds[rule] / seconds['backprop']:4.2f}x)" for rule in LEARNING_RULES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=1024)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    images = render_objects(args.images, args.image_size, seed=0).images
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for dev in devices:
        bench_features(images, args.width, args.image_size, dev)
    bench_training(args.width, args.image_size, args.train_images)


if __name__ == "__main__":
    main()
