import importlib

import keras_label_relaxation as klr


def test_every_public_name_is_importable_from_the_top_level():
    for name in klr.__all__:
        assert getattr(klr, name) is not None, name


def test_subpackage_exports_are_re_exported():
    for module in ("losses", "metrics", "calibration"):
        sub = importlib.import_module(f"keras_label_relaxation.{module}")
        for name in sub.__all__:
            assert getattr(klr, name) is getattr(sub, name), name


def test_losses_are_registered_serializables():
    import keras

    for name in (
        "LabelRelaxation",
        "SparseLabelRelaxation",
        "BinaryLabelRelaxation",
        "SparseLabelSmoothing",
        "ConfidencePenalty",
        "SparseConfidencePenalty",
        "SparseCategoricalFocalCrossentropy",
    ):
        cls = getattr(klr, name)
        assert keras.saving.get_registered_name(cls) == f"keras_label_relaxation>{name}"


def test_subpackages_are_attributes():
    assert (
        klr.models.get_model is importlib.import_module("keras_label_relaxation.models").get_model
    )
    assert klr.datasets.load is importlib.import_module("keras_label_relaxation.datasets").load
