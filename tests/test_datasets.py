"""Data sources, the paper's protocol and the tf.data pipeline."""

import os
import shutil
import time

import numpy as np
import pytest

from keras_label_relaxation import datasets
from keras_label_relaxation.datasets import tfds_source
from tests.conftest import SHARED_DATA, write_idx

MNIST_TEST = os.path.join(SHARED_DATA, "mnist-test")
MNIST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
needs_mnist = pytest.mark.skipif(
    not os.path.isdir(MNIST_TEST), reason="../shared/data/mnist-test is not available"
)


# ---------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------


@needs_mnist
def test_read_idx_on_real_mnist_test_set():
    images = datasets.read_idx(os.path.join(MNIST_TEST, "t10k-images-idx3-ubyte.gz"))
    labels = datasets.read_idx(os.path.join(MNIST_TEST, "t10k-labels-idx1-ubyte.gz"))
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == MNIST_COUNTS
    assert images.max() == 255 and images.min() == 0


@needs_mnist
def test_load_idx_directory_with_only_the_test_split():
    data = datasets.load(MNIST_TEST)
    assert data.x_train.shape == (10000, 28, 28, 1) and len(data.y_test) == 0
    assert (
        data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() <= data.x_train.max() <= 1.0
    )
    assert data.num_classes == 10
    split = datasets.resample(data, seed=0, test_fraction=1 / 7)
    assert len(split.y_test) == 1429 and len(split.y_train) == 8571
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.resample(data, seed=0)


@pytest.mark.parametrize(
    ("dtype", "code"),
    [("u1", 0x08), ("i1", 0x09), ("i2", 0x0B), ("i4", 0x0C), ("f4", 0x0D), ("f8", 0x0E)],
)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_read_idx_dtypes_and_compression(tmp_path, dtype, code, compress):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / "data-idx3"
    write_idx(path, array, code, compress)
    result = datasets.read_idx(path)
    assert result.dtype == np.dtype(dtype) and result.shape == (2, 3, 4)
    np.testing.assert_array_equal(result, array)


def test_corrupted_idx_files_raise_naming_the_file(tmp_path):
    good = tmp_path / "good"
    write_idx(good, np.arange(10, dtype="u1"), 0x08)
    raw = good.read_bytes()
    cases = {
        "magic": (b"\x01\x00" + raw[2:], "not an IDX file"),
        "type": (raw[:2] + b"\x07" + raw[3:], "not an IDX file"),
        "truncated": (raw[:-3], "truncated"),
        "trailing": (raw + b"\x00", "trailing bytes"),
        "header": (raw[:6], "truncated IDX header"),
        "gzip": (b"\x1f\x8b" + raw, "corrupt gzip"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message) as info:
            datasets.read_idx(path)
        assert str(path) in str(info.value)


def test_idx_directory_with_mismatched_counts(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 2, 2), "u1"), 0x08)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, "u1"), 0x08, compress=True)
    with pytest.raises(ValueError, match="5 images .* 4 labels"):
        datasets.load_idx_directory(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="lacks t10k-labels-idx1-ubyte"):
        datasets.load_idx_directory(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no IDX split found"):
        datasets.load_idx_directory(empty)


@needs_mnist
def test_idx_directory_with_both_splits(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(os.path.join(MNIST_TEST, name), tmp_path / name)
        shutil.copy(os.path.join(MNIST_TEST, name), tmp_path / name.replace("t10k", "train"))
    data = datasets.load(str(tmp_path))
    assert len(data.y_train) == len(data.y_test) == 10000


# ---------------------------------------------------------------------------
# tensorflow-datasets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "shape"), [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_source_with_mock_data(tmp_path, name, shape):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=24):
        data = datasets.load(name, data_dir=str(tmp_path))
    assert data.x_train.shape == (24, *shape) and data.x_test.shape == (24, *shape)
    assert data.x_train.dtype == np.float32 and data.x_train.max() <= 1.0
    assert data.y_train.dtype == np.int64 and data.name == name


def test_missing_tfds_data_without_network_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "_network_available", lambda host="": False)
    start = time.monotonic()
    with pytest.raises(datasets.DatasetUnavailableError, match=r"data_dir.*IDX files") as info:
        datasets.load("mnist", data_dir=str(tmp_path))
    assert time.monotonic() - start < 30  # no retries
    assert "no network" in str(info.value)
    with pytest.raises(datasets.DatasetUnavailableError, match=r"download=False"):
        datasets.load("cifar100", data_dir=str(tmp_path), download=False)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown data set: 'svhn'.*digits, mnist, fashion_mnist"):
        datasets.load("svhn")


# ---------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------


def _rows(x, y):
    return sorted(zip(y.tolist(), map(bytes, x.reshape(len(y), -1).view(np.uint8))))


def test_resampling_is_a_permutation_and_reproducible():
    data = datasets.load("digits")
    a = datasets.resample(data, seed=3)
    assert len(a.y_train) == len(data.y_train) and len(a.y_test) == len(data.y_test)
    pooled = _rows(
        np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])
    )
    resampled = _rows(np.concatenate([a.x_train, a.x_test]), np.concatenate([a.y_train, a.y_test]))
    assert pooled == resampled  # nothing lost, nothing duplicated
    b = datasets.resample(data, seed=3)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    c = datasets.resample(data, seed=4)
    assert not np.array_equal(a.y_test, c.y_test)
    assert len(datasets.resample(data, seed=0, test_fraction=0.5).y_test) == 898


def test_split_holdout():
    x, y = np.arange(600).reshape(300, 2), np.arange(300)
    (x_rest, y_rest), (x_held, y_held) = datasets.split_holdout(x, y, datasets.HOLDOUT_FRACTION, 0)
    assert len(y_held) == 50 and len(y_rest) == 250
    assert set(y_held).isdisjoint(y_rest) and set(y_held) | set(y_rest) == set(y)
    np.testing.assert_array_equal(x_held[:, 0] // 2, y_held)
    (_, _), (_, y_cal) = datasets.split_holdout(x, y, datasets.CALIBRATION_FRACTION, 0)
    assert len(y_cal) == 45
    with pytest.raises(ValueError, match="`fraction`"):
        datasets.split_holdout(x, y, 1.0, 0)


def test_standardize_subtracts_the_training_mean_and_travels():
    data = datasets.standardize(datasets.resample(datasets.load("digits"), seed=0))
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert data.pixel_mean.shape == (8, 8, 1)
    raw = datasets.load("digits")
    np.testing.assert_allclose(data.transform(raw.x_test), raw.x_test - data.pixel_mean)
    uint8 = np.full((1, 8, 8, 1), 255, np.uint8)
    np.testing.assert_allclose(data.transform(uint8), 1.0 - data.pixel_mean[None], rtol=1e-6)
    with pytest.raises(ValueError, match="Resample before"):
        datasets.resample(data, seed=1)


# ---------------------------------------------------------------------------
# tf.data
# ---------------------------------------------------------------------------


def _first_batches(dataset, n=2):
    return [(np.asarray(x), np.asarray(y)) for x, y in dataset.take(n)]


def test_augmentation_is_deterministic_per_seed_and_keeps_shapes():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 32)

    def batches(seed):
        return _first_batches(
            datasets.make_dataset(x, y, batch_size=8, training=True, augment=True, seed=seed)
        )

    a, b, c = batches(0), batches(0), batches(1)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))
    xa, ya = a[0]
    assert xa.shape == (8, 32, 32, 3) and xa.dtype == np.float32 and ya.dtype == np.int64
    # Augmented images are flipped/shifted versions: values stay in the input range.
    assert xa.min() >= 0.0 and xa.max() <= 1.0
    originals = {bytes(img.tobytes()) for img in x}
    assert sum(bytes(img.tobytes()) not in originals for img in xa) >= 6


def test_pipeline_without_augmentation_preserves_data_and_one_hot_labels():
    x = np.arange(5 * 4 * 4 * 1, dtype="float32").reshape(5, 4, 4, 1)
    y = np.array([0, 1, 2, 1, 0])
    batches = _first_batches(datasets.make_dataset(x, y, batch_size=2, num_classes=3), n=3)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.eye(3)[y])


def test_augmented_images_stay_float32_under_mixed_precision(restore_policy):
    import keras

    keras.config.set_dtype_policy("mixed_float16")
    x = np.random.default_rng(0).uniform(size=(8, 32, 32, 3)).astype("float32")
    dataset = datasets.make_dataset(x, np.zeros(8, "int64"), batch_size=8, augment=True)
    ((xa, _),) = _first_batches(dataset, 1)
    assert xa.dtype == np.float32
