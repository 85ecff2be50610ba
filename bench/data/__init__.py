"""Datasets by name: `load_dataset("digits", 16)`, `DATASETS`. The registry and the ImageSet / PairSet types are in
bench/data/base.py; this file re-exports them and imports every source module so that each registers itself.

Adding a dataset is one module with a function decorated by `@register_dataset` and one name in the import below.
"""

# Sources register themselves on import.
from bench.data import digits, folder, lego, pairs, synthetic, torchvision_sets  # noqa: F401
from bench.data.base import (
    DATASETS,
    DatasetEntry,
    ImageSet,
    Loader,
    PairSet,
    available_splits,
    default_data_root,
    load_dataset,
    register_dataset,
    resize,
    uint8_to_unit,
)

__all__ = ["DATASETS", "DatasetEntry", "ImageSet", "Loader", "PairSet", "available_splits", "default_data_root",
           "load_dataset", "register_dataset", "resize", "uint8_to_unit"]
