"""Tasks: the procedural objects task, the real digits set, image folders and torchvision datasets."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from models_testutil import stripes_folder

from neurofit.models.tasks import TaskError, make_task, num_classes, prepare_image, task_label


def test_digits_split_is_disjoint_and_seeded() -> None:
    data = make_task("digits", 5000, 5000, 16, seed=0)
    assert data.num_classes == 10
    assert len(data.test_images) == 1797 // 4 and len(data.train_images) == 1797 - 1797 // 4
    assert data.train_images.shape[1:] == (16, 16)
    assert data.train_images.min() >= 0 and data.train_images.max() <= 1
    train = {im.tobytes() for im in data.train_images}
    assert not any(im.tobytes() in train for im in data.test_images)
    again = make_task("digits", 100, 50, 16, seed=0)
    np.testing.assert_array_equal(again.test_labels, make_task("digits", 100, 50, 16, seed=0).test_labels)
    assert not np.array_equal(again.test_labels, make_task("digits", 100, 50, 16, seed=1).test_labels)


def test_objects_variation_levels_and_clutter() -> None:
    still = make_task("objects", 40, 8, 24, seed=0, variation_levels=(0,), clutter=0.0)
    # No clutter: the background is flat mid-grey; no variation: every object is centred.
    corners = still.train_images[:, :2, :2]
    assert np.allclose(corners, 0.5)
    varied = make_task("objects", 40, 8, 24, seed=0, variation_levels=(3,), clutter=0.5)
    assert varied.train_images[:, :2, :2].std() > 0.01
    assert set(np.unique(still.train_labels)) == set(range(8))
    with pytest.raises(ValueError, match="unknown task 'imagenet'"):
        make_task("imagenet", 1, 1, 16, 0)


def test_image_folder_split_is_stratified_seeded_and_disjoint(tmp_path: Path) -> None:
    root = stripes_folder(tmp_path / "stripes", per_class=10)
    task = {"image_folder": str(root), "heldout_fraction": 0.3}
    data = make_task(task, None, None, 16, seed=0)
    assert data.classes == ("diagonal", "horizontal", "vertical") and data.num_classes == 3 == num_classes(task)
    assert data.train_images.dtype == np.uint8 and data.train_images.shape[1:] == (16, 16)  # grey by default
    assert np.bincount(data.test_labels).tolist() == [3, 3, 3] and len(data.train_labels) == 21
    train = {im.tobytes() for im in data.train_images}
    assert not any(im.tobytes() in train for im in data.test_images)
    again = make_task(task, None, None, 16, seed=0)
    np.testing.assert_array_equal(again.test_images, data.test_images)
    other = make_task(task, None, None, 16, seed=1)
    assert not np.array_equal(other.test_images, data.test_images)
    color = make_task({**task, "color": True}, 6, 4, 12, seed=0)
    assert color.train_images.shape == (6, 3, 12, 12) and color.test_images.shape == (4, 3, 12, 12)
    assert task_label(task) == f"image_folder:{root}"


def test_heldout_folder_and_centre_crop(tmp_path: Path) -> None:
    from PIL import Image

    root = stripes_folder(tmp_path / "train", per_class=4)
    heldout = stripes_folder(tmp_path / "val", per_class=2, seed=1)
    data = make_task({"image_folder": str(root), "heldout_folder": str(heldout)}, None, None, 8, seed=0)
    assert len(data.train_labels) == 12 and len(data.test_labels) == 6
    # A 40 x 20 image whose left and right quarters are black: the centre square (after resizing the
    # shorter side) holds only the white middle.
    pixels = np.zeros((20, 40), dtype=np.uint8)
    pixels[:, 10:30] = 255
    prepared = prepare_image(Image.fromarray(pixels), 10, color=False)
    assert prepared.shape == (10, 10) and prepared[:, 1:-1].min() == 255


@pytest.mark.parametrize(("layout", "message"), [
    ("missing", "is not a folder"),
    ("one_class", "1 class subfolder"),
    ("empty_class", "holds no images"),
    ("corrupt", "not a readable image"),
    ("other_heldout_classes", "same class subfolders"),
])
def test_bad_image_folders_are_named(tmp_path: Path, layout: str, message: str) -> None:
    root = stripes_folder(tmp_path / "data", per_class=2)
    task: dict = {"image_folder": str(root)}
    if layout == "missing":
        task["image_folder"] = str(tmp_path / "nowhere")
    elif layout == "one_class":
        for name in ("horizontal", "vertical"):
            shutil.rmtree(root / name)
    elif layout == "empty_class":
        (root / "empty").mkdir()
    elif layout == "corrupt":
        (root / "vertical" / "broken.png").write_bytes(b"not a png")
    else:
        other = stripes_folder(tmp_path / "val", per_class=2)
        shutil.rmtree(other / "vertical")
        task["heldout_folder"] = str(other)
    with pytest.raises(TaskError, match=message):
        make_task(task, None, None, 8, seed=0)


class _FakeDataset:
    """Stands in for a torchvision dataset class: (PIL image, label) items, ``classes``, ``train=``."""

    classes = ["a", "b"]

    def __init__(self, root: str, train: bool, download: bool) -> None:
        from PIL import Image

        assert download is False and Path(root).is_dir()
        self.items = [(Image.new("L", (20, 14), 40 + 150 * (i % 2)), i % 2) for i in range(10 if train else 4)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple:
        return self.items[index]


def test_torchvision_dataset_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reading logic, with a stand-in for torchvision.datasets (torchvision does not import here)."""
    datasets = types.ModuleType("torchvision.datasets")
    datasets.FakeSet = _FakeDataset  # type: ignore[attr-defined]
    package = types.ModuleType("torchvision")
    package.datasets = datasets  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)
    task = {"torchvision": "FakeSet", "root": str(tmp_path)}
    data = make_task(task, 6, None, 8, seed=0)
    assert len(data.train_labels) == 6 and len(data.test_labels) == 4 and data.num_classes == 2 == num_classes(task)
    assert (data.train_images[data.train_labels == 1] > data.train_images[data.train_labels == 0].max()).all()
    with pytest.raises(TaskError, match="no dataset 'Nope'"):
        make_task({"torchvision": "Nope", "root": str(tmp_path)}, None, None, 8, seed=0)


def test_real_torchvision_dataset_needs_it_on_disk(tmp_path: Path) -> None:
    try:
        import torchvision.datasets  # noqa: F401
    except Exception as error:  # noqa: BLE001 (any import failure means: skip)
        pytest.skip(f"torchvision does not import beside this torch: {error}")
    with pytest.raises(TaskError, match="never downloaded"):
        make_task({"torchvision": "CIFAR10", "root": str(tmp_path)}, None, None, 8, seed=0)
