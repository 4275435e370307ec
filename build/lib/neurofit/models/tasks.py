"""Tasks: the offline ones (generated here or shipped inside an installed package, nothing
downloaded) and real images the user has on disk (an ``ImageFolder`` tree or a torchvision dataset).

A task is named by a string (``objects``, ``digits``) or by a mapping:

- ``{image_folder: <dir>}``: one subfolder per class (the ``torchvision.datasets.ImageFolder``
  layout, read here with PIL so torchvision is not needed); held-out images come from
  ``heldout_folder`` (same class subfolders) or a seeded, class-stratified ``heldout_fraction``;
- ``{torchvision: <dataset class>, root: <dir>}``: a ``torchvision.datasets`` dataset already on
  disk (never downloaded), its train split for training and its test split held out.

Either mapping takes ``color`` (default false: images are read as luminance, as the built-in
networks see stimuli; with true set ``features.grayscale: false`` too so stimuli are shown in colour).
Every image is resized (shorter side to ``image_size``, antialiased) and centre-cropped square.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from neurofit.image_files import IMAGE_SUFFIXES, is_image_file
from neurofit.images import CATEGORIES, render_objects


@dataclass(frozen=True)
class TaskData:
    """A labelled image set split into train and held-out parts: images are (n, H, W) grey or
    (n, 3, H, W) colour, float in [0, 1] (generated tasks) or uint8 in [0, 255] (real images: a
    quarter of the memory)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    classes: tuple[str, ...] = ()


TASKS = ("objects", "digits")
NUM_CLASSES = {"objects": len(CATEGORIES), "digits": 10}
TASK_SOURCES = ("image_folder", "torchvision")
_KNOWN = f"known: {list(TASKS)} or a mapping with one of {list(TASK_SOURCES)}"
# Sizes when the config leaves n_train / n_test unset (real-image tasks use every image).
DEFAULT_SIZES = {"objects": (4000, 1000), "digits": (4000, 1000)}


class TaskError(ValueError):
    """A task entry that cannot be read; the message names the key and the fix."""


def task_label(task: str | dict[str, Any]) -> str:
    """A short name for tables and performance.json."""
    if isinstance(task, str):
        return task
    source = _source(task)
    return f"{source}:{task[source]}"


def _source(task: dict[str, Any]) -> str:
    sources = [s for s in TASK_SOURCES if s in task]
    if len(sources) != 1:
        raise TaskError(f"task {task!r}: give exactly one of {list(TASK_SOURCES)} (or a built-in task name "
                        f"{list(TASKS)})")
    return sources[0]


def num_classes(task: str | dict[str, Any]) -> int:
    """Classes of a task (an image folder's class subfolders are counted, no image is read)."""
    if isinstance(task, str):
        if task not in NUM_CLASSES:
            raise TaskError(f"unknown task {task!r}; {_KNOWN}")
        return NUM_CLASSES[task]
    if _source(task) == "image_folder":
        return len(_class_folders(Path(task["image_folder"]), "task.image_folder"))
    dataset = _torchvision_split(task, train=True)
    if not getattr(dataset, "classes", None):
        raise TaskError(f"task.torchvision {task['torchvision']!r} lists no classes: set num_outputs")
    return len(dataset.classes)


def make_task(task: str | dict[str, Any], n_train: int | None, n_test: int | None, image_size: int, seed: int,
              variation_levels: tuple[int, ...] = (0, 1, 2, 3), clutter: float = 0.35) -> TaskData:
    """``objects``: shape categories under pose variation (levels 0-3) on 1/f clutter, rendered at
    ``image_size``; ``digits``: scikit-learn's 1797 real 8x8 handwritten digits, resized; a mapping:
    real images from disk (see the module docstring). ``n_train`` / ``n_test`` cap the images used
    (None: the task's default, every image for real-image tasks)."""
    if isinstance(task, dict):
        if _source(task) == "image_folder":
            return _image_folder(task, n_train, n_test, image_size, seed)
        return _torchvision(task, n_train, n_test, image_size, seed)
    default_train, default_test = DEFAULT_SIZES.get(task, (0, 0))
    n_train = default_train if n_train is None else n_train
    n_test = default_test if n_test is None else n_test
    if task == "objects":
        # Train and test use different seeds so no image is shared between them.
        train = render_objects(n_train, image_size, seed=10_000 + seed, variation_levels=tuple(variation_levels),
                               clutter=clutter)
        test = render_objects(n_test, image_size, seed=20_000 + seed, variation_levels=tuple(variation_levels),
                              clutter=clutter)
        return TaskData(train.images, train.labels, test.images, test.labels, NUM_CLASSES[task])
    if task == "digits":
        return _digits(n_train, n_test, image_size, seed)
    raise TaskError(f"unknown task {task!r}; {_KNOWN}")


def _digits(n_train: int, n_test: int, image_size: int, seed: int) -> TaskData:
    """The real digits set split by a seeded shuffle; at most a quarter is held out and the rest
    trains (the set has 1797 images, fewer than the default sizes ask for)."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = min(n_test, len(images) // 4)
    n_train = min(n_train, len(images) - n_test)
    test, train = order[:n_test], order[n_test:n_test + n_train]
    resized = F.interpolate(torch.from_numpy(images)[:, None], size=(image_size, image_size), mode="bilinear",
                            align_corners=False)[:, 0].clamp(0, 1).numpy()
    labels = digits.target.astype(np.int64)
    return TaskData(resized[train], labels[train], resized[test], labels[test], NUM_CLASSES["digits"])


# -- real images ---------------------------------------------------------------------------------
def prepare_image(image: Any, image_size: int, color: bool) -> np.ndarray:
    """A PIL image -> uint8 (H, W) grey or (3, H, W) colour: shorter side resized to
    ``image_size`` (antialiased), then the centre square."""
    from PIL import Image

    image = image.convert("RGB" if color else "L")
    width, height = image.size
    scale = image_size / min(width, height)
    size = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    array = np.asarray(image.crop((left, top, left + image_size, top + image_size)), dtype=np.uint8)
    return np.ascontiguousarray(array.transpose(2, 0, 1)) if color else array


def _class_folders(root: Path, key: str) -> list[str]:
    if not root.is_dir():
        raise TaskError(f"{key}: {root} is not a folder (expected one subfolder of images per class)")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if len(classes) < 2:
        raise TaskError(f"{key}: {root} has {len(classes)} class subfolder(s); a classification task needs at "
                        f"least 2 (layout: {root}/<class>/<image>.jpg)")
    return classes


def _image_files(root: Path, classes: list[str], key: str) -> tuple[list[Path], np.ndarray]:
    """Every image file under each class folder (recursively, sorted), with its class index."""
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if is_image_file(p) and p.is_file())
        if not found:
            raise TaskError(f"{key}: class folder {root / name} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [index] * len(found)
    return files, np.asarray(labels, dtype=np.int64)


def _read(files: list[Path], image_size: int, color: bool, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    shape = (3, image_size, image_size) if color else (image_size, image_size)
    out = np.empty((len(files), *shape), dtype=np.uint8)
    for i, path in enumerate(tqdm(files, desc=f"reading {what} images", leave=False)):
        try:
            with Image.open(path) as image:
                out[i] = prepare_image(image, image_size, color)
        except (UnidentifiedImageError, OSError) as error:
            raise TaskError(f"{path}: not a readable image ({error}); remove it from the task folder") from error
    return out


def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held out): a seeded ``fraction`` of each class held out (at least one image)."""
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_out = min(max(1, round(fraction * len(members))), len(members) - 1)
        test.append(members[:n_out])
        train.append(members[n_out:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _cap(indices: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """At most ``n`` of ``indices`` (a seeded sample, kept in order)."""
    if n is None or n >= len(indices):
        return indices
    return np.sort(np.random.default_rng(seed).choice(indices, size=n, replace=False))


def _image_folder(task: dict[str, Any], n_train: int | None, n_test: int | None, image_size: int,
                  seed: int) -> TaskData:
    root = Path(task["image_folder"])
    color = bool(task.get("color", False))
    classes = _class_folders(root, "task.image_folder")
    files, labels = _image_files(root, classes, "task.image_folder")
    if task.get("heldout_folder"):
        heldout = Path(task["heldout_folder"])
        if _class_folders(heldout, "task.heldout_folder") != classes:
            raise TaskError(f"task.heldout_folder: {heldout} must hold the same class subfolders as {root} "
                            f"({classes})")
        test_files, test_labels = _image_files(heldout, classes, "task.heldout_folder")
        train_idx, test_idx = np.arange(len(files)), np.arange(len(test_files))
    else:
        fraction = float(task.get("heldout_fraction", 0.2))
        if not 0 < fraction < 1:
            raise TaskError(f"task.heldout_fraction: {fraction} must be between 0 and 1")
        train_idx, test_idx = _stratified_split(labels, fraction, seed)
        test_files, test_labels = files, labels
    train_idx, test_idx = _cap(train_idx, n_train, seed), _cap(test_idx, n_test, seed + 1)
    return TaskData(_read([files[i] for i in train_idx], image_size, color, "train"), labels[train_idx],
                    _read([test_files[i] for i in test_idx], image_size, color, "held-out"), test_labels[test_idx],
                    len(classes), tuple(classes))


def _torchvision_split(task: dict[str, Any], train: bool) -> Any:
    """One split of a torchvision dataset on disk (``train=`` or ``split=`` as the class takes)."""
    name = task["torchvision"]
    if "root" not in task:
        raise TaskError(f"task.torchvision {name!r}: needs `root`, the folder the dataset was downloaded into")
    try:
        import torchvision.datasets
    except (ImportError, RuntimeError, AttributeError) as error:
        raise TaskError(f"task.torchvision {name!r}: torchvision does not import here ({error}); install a "
                        "torchvision matching this torch, or export the images as an image_folder") from error
    cls = getattr(torchvision.datasets, name, None)
    if cls is None:
        raise TaskError(f"task.torchvision: no dataset {name!r} in torchvision.datasets")
    try:
        try:
            return cls(task["root"], train=train, download=False)
        except TypeError:  # datasets with named splits (SVHN, STL10, ...)
            return cls(task["root"], split="train" if train else "test", download=False)
    except RuntimeError as error:  # what torchvision raises for a dataset not found on disk
        raise TaskError(f"task.torchvision {name!r}: not found under root {task['root']!r} ({error}); it is "
                        "never downloaded here: download it once with torchvision, or point root at it") from error


def _read_dataset(dataset: Any, indices: np.ndarray, image_size: int, color: bool, what: str) -> tuple[np.ndarray,
                                                                                                       np.ndarray]:
    shape = (3, image_size, image_size) if color else (image_size, image_size)
    images = np.empty((len(indices), *shape), dtype=np.uint8)
    labels = np.empty(len(indices), dtype=np.int64)
    for i, index in enumerate(tqdm(indices, desc=f"reading {what} images", leave=False)):
        image, label = dataset[int(index)]
        images[i] = prepare_image(image, image_size, color)
        labels[i] = int(label)
    return images, labels


def _torchvision(task: dict[str, Any], n_train: int | None, n_test: int | None, image_size: int,
                 seed: int) -> TaskData:
    color = bool(task.get("color", False))
    train_set, test_set = _torchvision_split(task, train=True), _torchvision_split(task, train=False)
    train_idx = _cap(np.arange(len(train_set)), n_train, seed)
    test_idx = _cap(np.arange(len(test_set)), n_test, seed + 1)
    train_images, train_labels = _read_dataset(train_set, train_idx, image_size, color, "train")
    test_images, test_labels = _read_dataset(test_set, test_idx, image_size, color, "held-out")
    classes = tuple(getattr(train_set, "classes", ()))
    n_classes = len(classes) or int(max(train_labels.max(), test_labels.max())) + 1
    return TaskData(train_images, train_labels, test_images, test_labels, n_classes, classes)
