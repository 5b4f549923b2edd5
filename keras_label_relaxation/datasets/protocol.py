"""The paper's data protocol: sources, per-seed resampling, hold-out splits, preprocessing."""

import dataclasses
import os

import numpy as np

from keras_label_relaxation.datasets.digits import load_digits
from keras_label_relaxation.datasets.idx import load_idx_directory
from keras_label_relaxation.datasets.tfds_source import TFDS_NAMES, load_tfds

#: Named data sets ``load`` accepts (besides a path to an IDX directory).
DATASET_NAMES = ("digits", *TFDS_NAMES)
#: Fraction of the training data held out for the parameter search (the paper: 1/6).
HOLDOUT_FRACTION = 1.0 / 6.0
#: Fraction of the training data held out to fit temperature scaling (the paper: 15%).
CALIBRATION_FRACTION = 0.15
#: Test examples of the embedded digits data (1/6 of 1,797, as CIFAR's 10,000 of 60,000).
DIGITS_TEST_SIZE = 300


@dataclasses.dataclass(frozen=True, eq=False)
class ClassificationData:
    """Train and test arrays of one data set, and the shift applied to them.

    Images are float32 in [0, 1] with a channel axis, ``(N, H, W, C)``; labels
    int64 class ids. After ``standardize`` the training split's per-pixel mean
    is subtracted from both splits and kept in ``pixel_mean``, so
    ``transform`` gives new data the same shift.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    pixel_mean: np.ndarray | None = None

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    def transform(self, x):
        """Preprocess new images like this data: uint8 / 255, minus ``pixel_mean``."""
        x = _unit_images(np.asarray(x))
        return x if self.pixel_mean is None else x - self.pixel_mean


def _unit_images(x):
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    x = x.astype(np.float32, copy=False)
    return x[..., None] if x.ndim == 3 else x


def _from_splits(name, splits):
    """``ClassificationData`` from ``{"train": (x, y), "test": (x, y)}``; a lone split is train."""
    if "train" not in splits:
        splits = {"train": splits["test"]}
    x_train, y_train = splits["train"]
    x_test, y_test = splits.get("test", (x_train[:0], y_train[:0]))
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    return ClassificationData(
        name=name,
        x_train=_unit_images(np.asarray(x_train)),
        y_train=y_train,
        x_test=_unit_images(np.asarray(x_test)),
        y_test=y_test,
        num_classes=int(np.concatenate([y_train, y_test]).max()) + 1,
    )


def from_arrays(name, x_train, y_train, x_test, y_test):
    """A ``ClassificationData`` from arrays (uint8 images are divided by 255).

    Example:
    >>> import numpy as np
    >>> x = np.zeros((4, 2, 2), "uint8")
    >>> data = from_arrays("toy", x, [0, 1, 0, 1], x[:2], [1, 2])
    >>> data.input_shape, data.num_classes
    ((2, 2, 1), 3)
    """
    return _from_splits(name, {"train": (x_train, y_train), "test": (x_test, y_test)})


def load(name, data_dir=None, download=True):
    """Load a data set by name or from an IDX directory.

    Args:
        name: ``"digits"`` (scikit-learn's bundled digits, offline; the last
            300 examples form the test split), ``"mnist"``, ``"fashion_mnist"``,
            ``"cifar10"``, ``"cifar100"`` (through tensorflow-datasets), or the
            path of a directory of IDX files (the MNIST distribution format) or
            of an ``.npz`` file (``x_train, y_train, x_test, y_test``). An
            IDX directory with only one split puts it in ``x_train``; resample
            it with a ``test_fraction``.
        data_dir: tensorflow-datasets data directory.
        download: Whether tensorflow-datasets may download missing data.

    Returns:
        A ``ClassificationData``.

    Example:
    >>> data = load("digits")
    >>> data.x_train.shape, data.x_test.shape, data.num_classes
    ((1497, 8, 8, 1), (300, 8, 8, 1), 10)
    """
    if name == "digits":
        x, y = load_digits()
        split = len(y) - DIGITS_TEST_SIZE
        return _from_splits(name, {"train": (x[:split], y[:split]), "test": (x[split:], y[split:])})
    if name in TFDS_NAMES:
        return _from_splits(name, load_tfds(name, data_dir=data_dir, download=download))
    if isinstance(name, (str, os.PathLike)) and os.path.isdir(name):
        return _from_splits(os.path.basename(os.path.normpath(name)), load_idx_directory(name))
    if isinstance(name, (str, os.PathLike)) and str(name).endswith(".npz"):
        return load_npz(name)
    raise ValueError(
        f"Unknown data set: {name!r}. Valid names: {', '.join(DATASET_NAMES)}, "
        "the path of a directory of IDX files or of an .npz file"
    )


def resample(data, seed, test_fraction=None):
    """Pool train and test and split them again at random (the paper, per seed).

    Args:
        data: A ``ClassificationData`` that is not yet standardised.
        seed: Seed of the permutation; the same seed gives the same split.
        test_fraction: Share of the pooled data for the test split; ``None``
            keeps the original test size.

    Returns:
        A ``ClassificationData`` with the same examples, split anew.

    Example:
    >>> data = resample(load("digits"), seed=0)
    >>> len(data.y_train), len(data.y_test)
    (1497, 300)
    """
    if data.pixel_mean is not None:
        raise ValueError("Resample before `standardize`: the pixel mean belongs to one split.")
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.y_test])
    n_test = len(data.y_test) if test_fraction is None else int(round(test_fraction * len(y)))
    if not 0 < n_test < len(y):
        raise ValueError(
            f"Invalid test split: {n_test} of {len(y)} examples (test_fraction={test_fraction}). "
            "Pass a test_fraction in (0, 1) for data without a test split."
        )
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[:n_test], order[n_test:]
    return dataclasses.replace(
        data, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test]
    )


def split_holdout(x, y, fraction, seed):
    """Split off a random ``fraction`` of ``(x, y)`` (1/6 for the search, 15% for TS).

    Returns:
        ``((x_rest, y_rest), (x_holdout, y_holdout))``.

    Example:
    >>> (rest, _), (held, _) = split_holdout(np.arange(12), np.arange(12), 1 / 6, seed=0)
    >>> len(rest), len(held)
    (10, 2)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"Invalid value for argument `fraction`. Expected a float in (0, 1). "
            f"Received: fraction={fraction}"
        )
    n_holdout = int(round(fraction * len(y)))
    if not 0 < n_holdout < len(y):
        raise ValueError(f"Cannot hold out {fraction} of {len(y)} examples.")
    order = np.random.default_rng(seed).permutation(len(y))
    held, rest = order[:n_holdout], order[n_holdout:]
    return (x[rest], y[rest]), (x[held], y[held])


def subtract_pixel_mean(x_fit, *others):
    """Centre images on the per-pixel mean of ``x_fit`` (the paper's preprocessing).

    The mean comes from the data a model is fitted on alone, as in the
    authors' code: the search's 5/6, the full training split for the final
    model, the 85% for temperature scaling; validation, calibration and test
    images get the same shift.

    Args:
        x_fit: Images ``(N, ...)`` a model is fitted on.
        *others: Further arrays shaped like ``x_fit[0]`` per example.

    Returns:
        ``(mean, x_fit - mean, *(x - mean for x in others))``.

    Example:
    >>> mean, fit, test = subtract_pixel_mean(np.array([[1.0], [3.0]]), np.array([[5.0]]))
    >>> mean.tolist(), fit.tolist(), test.tolist()
    ([2.0], [[-1.0], [1.0]], [[3.0]])
    """
    mean = np.asarray(x_fit).mean(axis=0).astype(np.float32)
    return (mean, *(np.asarray(x) - mean for x in (x_fit, *others)))


def standardize(data):
    """Subtract the training split's per-pixel mean from both splits (the paper's preprocessing).

    Images are already scaled to [0, 1] (x / 255) by ``load``. For the data a
    model is fitted on in part (a search hold-out, a calibration split) use
    ``subtract_pixel_mean`` on that part.

    Returns:
        A ``ClassificationData`` with ``pixel_mean`` set.
    """
    if data.pixel_mean is not None:
        return data
    mean, x_train, x_test = subtract_pixel_mean(data.x_train, data.x_test)
    return dataclasses.replace(data, x_train=x_train, x_test=x_test, pixel_mean=mean)


def subset(data, limit, seed=0):
    """At most ``limit`` random training examples and ``limit // 5`` test examples (seeded).

    ``limit=None`` returns ``data`` as it is.

    Example:
    >>> small = subset(load("digits"), 100)
    >>> len(small.y_train), len(small.y_test)
    (100, 20)
    """
    if not limit:
        return data
    rng = np.random.default_rng(seed)
    train = rng.permutation(len(data.y_train))[:limit]
    test = rng.permutation(len(data.y_test))[: max(1, limit // 5)]
    return dataclasses.replace(
        data,
        x_train=data.x_train[train],
        y_train=data.y_train[train],
        x_test=data.x_test[test],
        y_test=data.y_test[test],
    )


def load_npz(path):
    """A ``ClassificationData`` from an ``.npz`` file of ``x_train, y_train, x_test, y_test``."""
    with np.load(path) as arrays:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
        if missing:
            raise ValueError(f"{path} lacks the arrays {sorted(missing)}")
        splits = [arrays[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    name = os.path.splitext(os.path.basename(path))[0]
    return from_arrays(name, *splits)
