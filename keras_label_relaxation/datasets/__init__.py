"""Data sets, the paper's protocol and ``tf.data`` pipelines."""

from keras_label_relaxation.datasets.digits import load_digits
from keras_label_relaxation.datasets.idx import load_idx_directory, read_idx
from keras_label_relaxation.datasets.noise import (
    ASYMMETRIC_PATTERNS,
    NOISE_KINDS,
    LabelNoise,
    corrupt_labels,
    noise_record,
)
from keras_label_relaxation.datasets.pipeline import AUGMENTED_DATASETS, augmentation, make_dataset
from keras_label_relaxation.datasets.protocol import (
    CALIBRATION_FRACTION,
    DATASET_NAMES,
    HOLDOUT_FRACTION,
    ClassificationData,
    from_arrays,
    load,
    load_npz,
    resample,
    split_holdout,
    standardize,
    subset,
    subtract_pixel_mean,
)
from keras_label_relaxation.datasets.tfds_source import (
    TFDS_NAMES,
    DatasetUnavailableError,
    load_tfds,
)

__all__ = [
    "ASYMMETRIC_PATTERNS",
    "AUGMENTED_DATASETS",
    "CALIBRATION_FRACTION",
    "DATASET_NAMES",
    "HOLDOUT_FRACTION",
    "NOISE_KINDS",
    "TFDS_NAMES",
    "ClassificationData",
    "DatasetUnavailableError",
    "LabelNoise",
    "augmentation",
    "corrupt_labels",
    "from_arrays",
    "load",
    "load_digits",
    "load_idx_directory",
    "load_npz",
    "load_tfds",
    "make_dataset",
    "noise_record",
    "read_idx",
    "resample",
    "split_holdout",
    "standardize",
    "subset",
    "subtract_pixel_mean",
]
