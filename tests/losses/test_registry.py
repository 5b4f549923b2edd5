import keras
import numpy as np
import pytest

import keras_label_relaxation as klr

EXPECTED = {
    # name: (param, dense class, sparse class)
    "cross_entropy": (
        None,
        keras.losses.CategoricalCrossentropy,
        keras.losses.SparseCategoricalCrossentropy,
    ),
    "label_smoothing": (0.2, keras.losses.CategoricalCrossentropy, klr.SparseLabelSmoothing),
    "confidence_penalty": (2.0, klr.ConfidencePenalty, klr.SparseConfidencePenalty),
    "focal": (
        3.5,
        keras.losses.CategoricalFocalCrossentropy,
        klr.SparseCategoricalFocalCrossentropy,
    ),
    "label_relaxation": (0.05, klr.LabelRelaxation, klr.SparseLabelRelaxation),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_get_loss_builds_the_paper_loss(name, sparse):
    param, dense_cls, sparse_cls = EXPECTED[name]
    loss = klr.get_loss(name, param, sparse=sparse, from_logits=True)
    assert type(loss) is (sparse_cls if sparse else dense_cls)
    config = loss.get_config()
    assert config["from_logits"] is True
    param_name = klr.LOSS_PARAMETERS[name]
    if name == "label_smoothing" and not sparse:
        assert config["label_smoothing"] == param
    elif param_name is not None:
        assert config[param_name] == param
    if name == "focal":
        assert config["alpha"] == 1.0


def test_dense_and_sparse_registry_losses_agree(rng):
    logits = 2.0 * rng.standard_normal((16, 5)).astype("float32")
    labels = rng.integers(0, 5, 16)
    for name, (param, _, _) in EXPECTED.items():
        dense = float(klr.get_loss(name, param, False, True)(np.eye(5)[labels], logits))
        sparse = float(klr.get_loss(name, param, True, True)(labels, logits))
        np.testing.assert_allclose(dense, sparse, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("alias", sorted(klr.LOSS_ALIASES))
def test_aliases(alias):
    assert type(klr.get_loss(alias)) is type(klr.get_loss(klr.LOSS_ALIASES[alias]))


def test_defaults():
    assert klr.get_loss("label_relaxation").get_config()["alpha"] == 0.1
    assert klr.get_loss("focal", sparse=True).get_config()["gamma"] == 2.0


def test_unknown_name_lists_valid_names():
    with pytest.raises(
        ValueError, match=r"Unknown loss name: 'hinge'.*cross_entropy.*label_relaxation"
    ):
        klr.get_loss("hinge")


def test_bad_parameters():
    with pytest.raises(ValueError, match="takes no parameter"):
        klr.get_loss("cross_entropy", 0.1)
    with pytest.raises(ValueError, match="`alpha`"):
        klr.get_loss("label_smoothing", 1.5)
    with pytest.raises(ValueError, match="`alpha`"):
        klr.get_loss("lr", 0.0)
    with pytest.raises(ValueError, match="`gamma`"):
        klr.get_loss("focal", -1.0)
    with pytest.raises(ValueError, match="`beta`"):
        klr.get_loss("cp", -1.0)
