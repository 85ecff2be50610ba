"""MNIST, Fashion-MNIST and CIFAR-10 read from torchvision's on-disk layouts under the data root.

Files are parsed directly (IDX, gzipped or not; CIFAR's pickled batches), so a read-only copy works and nothing
is ever downloaded here; `bench data download NAME` asks torchvision to fetch them when online.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch

from bench.data.base import ImageSet, register_dataset, uint8_to_unit
from bench.errors import BenchError, DatasetNotFound

_IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_idx(path: Path, dataset: str) -> np.ndarray:
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.exists():
            opener = gzip.open if candidate.suffix == ".gz" else open
            try:
                with opener(candidate, "rb") as f:
                    data = f.read()
            except (EOFError, OSError) as err:  # a gzip stream cut short, or not gzip at all
                raise _damaged(candidate, dataset, str(err) or type(err).__name__) from None
            if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 8:
                raise _damaged(candidate, dataset, "not an IDX file of bytes (its header is wrong)")
            ndim = data[3]
            shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
            expected = 4 + 4 * ndim + int(np.prod(shape))
            if len(data) != expected:
                raise _damaged(candidate, dataset, f"it holds {len(data):,} bytes of the {expected:,} its header "
                                                   "announces")
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    raise FileNotFoundError(path)


def _damaged(path: Path, dataset: str, why: str) -> BenchError:
    return BenchError(f"dataset file {path} is damaged ({why}): a download cut short? delete it and copy it again, "
                      f"or run `bench data download {dataset}` on a machine with internet")


def _load_idx_set(name: str, folder: str, classes: list[str], data_root: Path, split: str) -> ImageSet:
    raw = data_root / folder / "raw"
    images_file, labels_file = _IDX[split]
    try:
        images = _read_idx(raw / images_file, name)
        labels = _read_idx(raw / labels_file, name)
    except FileNotFoundError as missing:
        raise DatasetNotFound(
            f"dataset '{name}' split '{split}' not found: {missing.args[0]}(.gz) is missing; "
            f"put torchvision's raw files under {raw} (or set --data-root / BENCH_DATA), "
            f"or run `bench data download {name}` on a machine with internet") from None
    x = uint8_to_unit(torch.from_numpy(images.copy()).unsqueeze(1))
    return ImageSet(x, torch.from_numpy(labels.astype(np.int64)), classes)


@register_dataset("mnist", "MNIST handwritten digits, 28x28 grey, labels 0-9 (torchvision layout: <root>/MNIST/raw)")
def load_mnist(data_root: Path, split: str, resolution: int) -> ImageSet:
    return _load_idx_set("mnist", "MNIST", [str(d) for d in range(10)], data_root, split)


_FASHION = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


@register_dataset("fashion-mnist",
                  "Fashion-MNIST, 28x28 grey, 10 clothing classes (torchvision layout: <root>/FashionMNIST/raw)")
def load_fashion_mnist(data_root: Path, split: str, resolution: int) -> ImageSet:
    return _load_idx_set("fashion-mnist", "FashionMNIST", _FASHION, data_root, split)


@register_dataset("cifar10", "CIFAR-10, 32x32 RGB, 10 classes (torchvision layout: <root>/cifar-10-batches-py)")
def load_cifar10(data_root: Path, split: str, resolution: int) -> ImageSet:
    folder = data_root / "cifar-10-batches-py"
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [f for f in files if not (folder / f).exists()]
    if missing:
        raise DatasetNotFound(
            f"dataset 'cifar10' split '{split}' not found: {folder / missing[0]} is missing; put torchvision's "
            f"cifar-10-batches-py under {data_root} (or set --data-root / BENCH_DATA), "
            "or run `bench data download cifar10` on a machine with internet")
    images, labels = [], []
    for f in files:
        try:
            with open(folder / f, "rb") as fh:
                batch = pickle.load(fh, encoding="latin1")
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        except (EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
            raise _damaged(folder / f, "cifar10", str(err) or type(err).__name__) from None
        labels.extend(batch["labels"])
    classes = [str(i) for i in range(10)]
    if (folder / "batches.meta").exists():
        with open(folder / "batches.meta", "rb") as fh:
            classes = list(pickle.load(fh, encoding="latin1")["label_names"])
    return ImageSet(uint8_to_unit(torch.from_numpy(np.concatenate(images))), torch.tensor(labels), classes)
