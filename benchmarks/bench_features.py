"""Feature extraction and training speed per architecture (and learning rule), printed.

    python benchmarks/bench_features.py [--images 512] [--width 16] [--image-size 32]
        [--named-images 64] [--sections features,training,named]

Feature extraction: images per second through ``neurofit.features.layer_activations`` for each
architecture's every block, against a naive peer in the same process (a full forward pass with a
hook that keeps the layer, concatenating batches), on the CPU and on CUDA when present.
Training: seconds per epoch of each architecture under each learning rule, as a ratio to backprop.
Named networks (``named``): a ResNet-50-class and a ViT-B/16-class network (transformers, random
weights) at 224 px: images per second and peak memory of ``layer_activations`` against a plain
forward-hook loop on the same model (full forward pass, batches concatenated). Peak memory is the
rise of the process's peak RSS (Linux ``clear_refs`` resets it) on the CPU, of
``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import time
from pathlib import Path

import numpy as np
import torch

from neurofit.features import Preprocess, layer_activations, output_tensor, preprocess_named
from neurofit.images import render_objects
from neurofit.models.catalog import ARCHITECTURES, LEARNING_RULES, layer_names
from neurofit.models.train import ModelSpec, train


@torch.no_grad()
def naive_activations(model: torch.nn.Module, layer: str, images: np.ndarray, prep: Preprocess,
                      dev: torch.device, batch_size: int) -> np.ndarray:
    out: list[torch.Tensor] = []
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda _m, _i, o: out.append(output_tensor(o).flatten(1).cpu()))
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


NAMED = {"ResNet-50 (ResNetConfig)": ("ResNetConfig", ["encoder.stages.0", "encoder.stages.2", "pooler"]),
         "ViT-B/16 (ViTConfig)": ("ViTConfig", ["layers.0", "layers.5", "layers.11"])}


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb(fn, dev: torch.device) -> float:
    """Memory ``fn`` adds at its peak: CUDA allocator peak, or the rise of the peak RSS."""
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    gc.collect()
    with contextlib.suppress(OSError):  # free heap pages go back to the OS, so a reused allocation counts again
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return float("nan")
    base = _rss_mb("VmRSS")
    fn()
    return _rss_mb("VmHWM") - base


def bench_named(n_images: int, dev: torch.device, batch_size: int = 32) -> None:
    from neurofit.models.zoo import NamedNetwork, prepare

    images = render_objects(n_images, 112, seed=0).images  # grey, native 112 px, shown at 224 px RGB
    print(f"\nnamed networks on {dev} ({n_images} images 112 px -> 224 px RGB, random weights, batch {batch_size}); "
          f"peak MB above the model")
    print(f"{'network':26s} {'layer':18s} {'features':>8s} {'img/s':>7s} {'hook-loop img/s':>15s} {'ratio':>6s} "
          f"{'peak MB':>8s} {'hook-loop MB':>12s}")
    for label, (network, layers) in NAMED.items():
        prepared = prepare(NamedNetwork.from_config("bench", {"source": "transformers", "network": network,
                                                              "weights": "random"}))
        model, prep = prepared.model.to(dev).eval(), preprocess_named(prepared.input)
        layer_activations(model, layers[0], images[:4], prep, batch_size, progress=False, dev=dev)  # warm-up
        for layer in layers:
            def ours(k=layer, m=model, p=prep):
                return layer_activations(m, k, images, p, batch_size, progress=False, dev=dev)

            def plain(k=layer, m=model, p=prep):
                return naive_activations(m, k, images, p, dev, batch_size)

            ours_s, plain_s = timed(ours, repeats=1), timed(plain, repeats=1)
            plain_mb, ours_mb = peak_mb(plain, dev), peak_mb(ours, dev)
            n_features = ours().shape[1]
            print(f"{label:26s} {layer:18s} {n_features:8d} {n_images / ours_s:7.1f} {n_images / plain_s:15.1f} "
                  f"{plain_s / ours_s:6.2f} {ours_mb:8.0f} {plain_mb:12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--named-images", type=int, default=64, help="images for the named 224 px networks")
    parser.add_argument("--sections", default="features,training,named", help="which of features,training,named")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    images = render_objects(args.images, args.image_size, seed=0).images
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for dev in devices:
        if "features" in sections:
            bench_features(images, args.width, args.image_size, dev)
        if "named" in sections:
            bench_named(args.named_images, dev)
    if "training" in sections:
        bench_training(args.width, args.image_size, args.train_images)


if __name__ == "__main__":
    main()
