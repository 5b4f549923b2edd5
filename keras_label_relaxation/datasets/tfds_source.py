"""The paper's data sets through tensorflow-datasets."""

import socket

import numpy as np

#: The tensorflow-datasets names this package loads.
TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100")


class DatasetUnavailableError(RuntimeError):
    """A tfds data set is neither prepared in ``data_dir`` nor downloadable now."""


_DOWNLOAD_HOST = "storage.googleapis.com"


def _network_available(host=_DOWNLOAD_HOST):
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _split_arrays(dataset):
    import tensorflow_datasets as tfds

    images, labels = [], []
    for x, y in tfds.as_numpy(dataset.batch(4096)):
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def load_tfds(name, data_dir=None, download=True):
    """Load the train and test splits of ``name`` with ``tfds.load``.

    Prepared data in ``data_dir`` (tfds' default directory if ``None``) is
    used as it is. Otherwise, with ``download=True``, tfds downloads and
    prepares it; without a network this fails at once with an error that says
    how to supply the data instead of retrying.

    Args:
        name: One of ``TFDS_NAMES``.
        data_dir: tfds data directory.
        download: Whether tfds may download and prepare missing data.

    Returns:
        ``{"train": (images, labels), "test": (images, labels)}``, images uint8
        ``(N, H, W, C)``, labels int64.
    """
    import tensorflow_datasets as tfds

    if name not in TFDS_NAMES:
        raise ValueError(f"Unknown data set name: {name!r}. Valid names: {', '.join(TFDS_NAMES)}")
    kwargs = {"split": ["train", "test"], "as_supervised": True, "data_dir": data_dir}
    try:
        train, test = tfds.load(name, download=False, **kwargs)
    except AssertionError as missing:  # tfds' "could not find data in ..."
        where = data_dir or "tfds' default data directory (~/tensorflow_datasets)"
        if not download or not _network_available():
            reason = "download=False" if not download else "no network"
            raise DatasetUnavailableError(
                f"Data set {name!r} is not prepared in {where} and cannot be downloaded "
                f"({reason}). Either run `tfds build {name}` (or tfds.load) on a machine with "
                "a network and point `data_dir` at the prepared directory, or, for MNIST and "
                "Fashion-MNIST, pass a directory of the official IDX files "
                "(train-images-idx3-ubyte[.gz], ...) as the data set."
            ) from missing
        train, test = tfds.load(name, download=True, **kwargs)
    return {"train": _split_arrays(train), "test": _split_arrays(test)}
