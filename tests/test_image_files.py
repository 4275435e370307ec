"""One list of image formats for every reader: each listed suffix is a file PIL writes and reads back,
and the pca_images folder, the task folders and the stimulus folders all take it."""

import numpy as np
import pytest
from PIL import Image

from neurofit.feature_settings import image_set_files
from neurofit.image_files import IMAGE_SUFFIXES, is_image_file
from neurofit.neural.nwb import STIMULUS_FILE_SUFFIXES, read_image_file


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_every_listed_format_is_read_by_every_reader(tmp_path, suffix):
    pixels = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    path = tmp_path / f"img{suffix.upper()}"  # suffixes match in any case
    Image.fromarray(pixels).save(path, format=Image.registered_extensions()[suffix])
    assert is_image_file(path)
    assert image_set_files(tmp_path) == [path]
    read = read_image_file(path)
    grey = read if read.ndim == 2 else read[..., 0]  # GIF (palette) and WebP come back RGB; WebP is lossy
    assert read.shape[:2] == (8, 8) and (read.ndim == 2 or np.allclose(read, grey[..., None], atol=0.02))
    assert np.corrcoef(grey.ravel(), pixels.ravel())[0, 1] > 0.99  # the pixels, not a blank


def test_non_images_are_not_taken(tmp_path):
    for name in ("notes.txt", "clip.mp4", "data.nc"):
        (tmp_path / name).write_text("x")
        assert not is_image_file(tmp_path / name)
    assert image_set_files(tmp_path) == []
    assert ".npy" in STIMULUS_FILE_SUFFIXES and ".npy" not in IMAGE_SUFFIXES
