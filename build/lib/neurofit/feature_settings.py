"""A model entry's ``features:`` options (how one layer's activations are read and reduced), typed.

torch-free (the features stage builds it before loading the network). No key has a schema default:
unset means the architecture decides (batch size, colour, input statistics), as the schema describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurofit.image_files import is_image_file
from neurofit.settings import Settings

# Images per forward pass when ``batch_size`` is unset: built-in networks are small, named ones are not.
BUILTIN_BATCH_SIZE = 128
NAMED_BATCH_SIZE = 32
# The options that change the network's input (neurofit.features.preprocess_for / preprocess_named).
PREPROCESS_KEYS = ("grayscale", "normalisation", "stimulus_degrees", "model_degrees")


@dataclass(frozen=True)
class FeatureSettings(Settings):
    SCHEMA_KEY = "$defs.model.features"
    reduce: str | None = None
    max_dims: int | None = None
    pca_images: str | None = None
    spill_dir: str | None = None
    stimulus_degrees: float | None = None
    model_degrees: float | None = None
    grayscale: bool | None = None
    normalisation: str | None = None
    batch_size: int | None = None

    def batch(self, named: bool) -> int:
        """Images per forward pass: ``batch_size``, else the default of a named or a built-in network."""
        if self.batch_size is not None:
            return int(self.batch_size)
        return NAMED_BATCH_SIZE if named else BUILTIN_BATCH_SIZE

    def preprocessing(self) -> dict[str, Any]:
        """The options set that change the network's input, as ``preprocess_for``/``preprocess_named`` take them."""
        return {key: getattr(self, key) for key in PREPROCESS_KEYS if getattr(self, key) is not None}


def image_set_files(path: str | Path) -> list[Path]:
    """What ``features.pca_images`` names, file by file: the stimuli ``.nc`` file itself, or the image
    files of a folder in name order (none for a path that is neither)."""
    source = Path(path)
    if source.is_dir():
        return sorted(f for f in source.iterdir() if is_image_file(f))
    return [source] if source.is_file() else []
