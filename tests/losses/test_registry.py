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
    "data_ambiguation": (0.1, klr.DataAmbiguation, klr.DataAmbiguation),
    "generalized_cross_entropy": (
        0.5,
        klr.GeneralizedCrossEntropy,
        klr.SparseGeneralizedCrossEntropy,
    ),
    "symmetric_cross_entropy": (
        0.05,
        klr.SymmetricCrossEntropy,
        klr.SparseSymmetricCrossEntropy,
    ),
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
    assert klr.get_loss("rda").get_config()["alpha"] == 0.05
    assert klr.get_loss("gce").get_config()["q"] == 0.7
    sce = klr.get_loss("sce").get_config()
    assert (sce["alpha"], sce["beta"], sce["log_floor"]) == (0.1, 1.0, -4.0)


def test_rda_follows_the_papers_threshold_schedule_over_the_epochs():
    # Supplement A.3: cosine from 0.75 to 0.6 over the training; no schedule without epochs.
    assert klr.get_loss("rda", 0.05).beta_state is None
    assert klr.get_loss("rda", 0.05).get_config()["beta"] == 0.6
    loss = klr.get_loss("rda", 0.05, sparse=True, from_logits=True, epochs=4)
    threshold = loss.beta_state.schedule
    expected = [0.6 + 0.15 * 0.5 * (1 + np.cos(np.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose([threshold(e) for e in range(4)], expected, rtol=1e-12)
    assert loss.schedule_states == [loss.beta_state]
    assert klr.get_loss("lr", 0.1, epochs=4).schedule_states == []


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
    with pytest.raises(ValueError, match="`alpha`"):
        klr.get_loss("rda", 1.0)
    with pytest.raises(ValueError, match="`q`"):
        klr.get_loss("gce", 0.0)
    with pytest.raises(ValueError, match="`alpha`"):
        klr.get_loss("sce", -0.1)
