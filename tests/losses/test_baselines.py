"""The paper's baselines against NumPy references of their published formulas."""

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from tests import oracle
from tests.conftest import to_numpy, value_and_grad


@pytest.fixture
def case(rng):
    logits = 2.0 * rng.standard_normal((32, 7))
    labels = rng.integers(0, 7, 32)
    return logits, labels, oracle.softmax(logits)


def _focal_paper(one_hot, probs, gamma):
    # The paper's focal loss: sum_k -(1 - p_k)^gamma y_k log p_k.
    return -np.sum((1.0 - probs) ** gamma * one_hot * np.log(probs), axis=-1)


@pytest.mark.parametrize("gamma", [0.1, 0.2, 0.5, 1.0, 2.0, 3.5, 5.0])
def test_keras_focal_with_alpha_one_is_the_papers_focal_loss(case, gamma):
    logits, labels, probs = case
    one_hot = np.eye(7)[labels]
    keras_focal = keras.losses.CategoricalFocalCrossentropy(
        alpha=1.0, gamma=gamma, from_logits=True, reduction=None
    )
    expected = _focal_paper(one_hot, probs, gamma)
    np.testing.assert_allclose(to_numpy(keras_focal(one_hot, logits)), expected, rtol=1e-5)
    ours = to_numpy(klr.sparse_categorical_focal_crossentropy(labels, logits, 1.0, gamma, True))
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    registry = klr.get_loss("focal", gamma, sparse=False, from_logits=True)
    assert isinstance(registry, keras.losses.CategoricalFocalCrossentropy)
    assert registry.get_config()["alpha"] == 1.0 and registry.get_config()["gamma"] == gamma


def test_sparse_focal_matches_keras_focal_with_its_default_alpha(case):
    logits, labels, probs = case
    keras_focal = keras.losses.CategoricalFocalCrossentropy(from_logits=False, reduction=None)
    ours = klr.SparseCategoricalFocalCrossentropy(from_logits=False, reduction=None)
    np.testing.assert_allclose(
        to_numpy(ours(labels, probs)), to_numpy(keras_focal(np.eye(7)[labels], probs)), rtol=1e-5
    )


def test_sparse_focal_gamma_below_one_has_finite_gradient():
    logits = np.array([[50.0, 0.0, 0.0]])  # p(y) rounds to 1
    _, grad = value_and_grad(
        lambda t: klr.sparse_categorical_focal_crossentropy([0], t, 1.0, 0.1, True), logits
    )
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.4])
def test_sparse_label_smoothing(case, alpha):
    logits, labels, probs = case
    smoothed = (1 - alpha) * np.eye(7)[labels] + alpha / 7
    expected = -np.sum(smoothed * np.log(probs), axis=-1)
    ours = to_numpy(klr.sparse_label_smoothing(labels, logits, alpha, from_logits=True))
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    keras_ls = keras.losses.CategoricalCrossentropy(
        label_smoothing=alpha, from_logits=True, reduction=None
    )
    np.testing.assert_allclose(
        to_numpy(klr.SparseLabelSmoothing(alpha, from_logits=True, reduction=None)(labels, logits)),
        to_numpy(keras_ls(np.eye(7)[labels], logits)),
        rtol=1e-5,
    )


@pytest.mark.parametrize("beta", [0.0, 0.1, 1.0, 8.0])
def test_confidence_penalty(case, beta):
    logits, labels, probs = case
    entropy = -np.sum(probs * np.log(probs), axis=-1)
    expected = -np.log(probs[np.arange(32), labels]) - beta * entropy
    sparse = to_numpy(klr.sparse_confidence_penalty(labels, logits, beta, from_logits=True))
    dense = to_numpy(klr.confidence_penalty(np.eye(7)[labels], logits, beta, from_logits=True))
    from_probs = to_numpy(klr.sparse_confidence_penalty(labels, probs, beta))
    np.testing.assert_allclose(sparse, expected, rtol=1e-10)
    np.testing.assert_allclose(dense, expected, rtol=1e-10)
    np.testing.assert_allclose(from_probs, expected, rtol=1e-9)


def test_confidence_penalty_with_zero_beta_is_cross_entropy(case):
    logits, labels, _ = case
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
        labels, logits
    )
    np.testing.assert_allclose(
        to_numpy(klr.sparse_confidence_penalty(labels, logits, 0.0, True)), to_numpy(ce), rtol=1e-6
    )


def test_focal_with_zero_gamma_is_cross_entropy(case):
    logits, labels, _ = case
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
        labels, logits
    )
    np.testing.assert_allclose(
        to_numpy(klr.sparse_categorical_focal_crossentropy(labels, logits, 1.0, 0.0, True)),
        to_numpy(ce),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "fn",
    [
        klr.sparse_label_smoothing,
        klr.sparse_confidence_penalty,
        klr.sparse_categorical_focal_crossentropy,
    ],
    ids=lambda f: f.__name__,
)
def test_sparse_baselines_extreme_logits_and_nan(rng, fn):
    logits = 1e4 * np.sign(rng.standard_normal((8, 5)))
    labels = rng.integers(0, 5, 8)
    value, grad = value_and_grad(lambda t: fn(labels, t, from_logits=True), logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    nan_logits = np.array([[np.nan, 0.0, 1.0]])
    assert np.isnan(to_numpy(fn([0], nan_logits, from_logits=True))).all()


def test_half_precision_inputs_give_float32(case):
    logits, labels, _ = case
    half = keras.ops.cast(logits, "float16")
    for fn in (
        klr.sparse_label_smoothing,
        klr.sparse_confidence_penalty,
        klr.sparse_categorical_focal_crossentropy,
    ):
        value = to_numpy(fn(labels, half, from_logits=True))
        reference = to_numpy(fn(labels, logits.astype("float32"), from_logits=True))
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, reference, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (klr.SparseLabelSmoothing, {"alpha": 1.0}, "`alpha`"),
        (klr.ConfidencePenalty, {"beta": -1.0}, "`beta`"),
        (klr.SparseConfidencePenalty, {"beta": float("inf")}, "`beta`"),
        (klr.SparseCategoricalFocalCrossentropy, {"gamma": -0.5}, "`gamma`"),
        (klr.SparseCategoricalFocalCrossentropy, {"alpha": "x"}, "`alpha`"),
    ],
)
def test_bad_parameters_raise(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_bad_targets_raise_with_validate_args():
    with pytest.raises(ValueError, match="probability distribution"):
        klr.confidence_penalty(
            np.array([[0.5, 0.2, 0.1]]), np.zeros((1, 3)), 1.0, True, validate_args=True
        )
    with pytest.raises(ValueError, match=r"class ids must be integers in \[0, 3\)"):
        klr.sparse_label_smoothing([3], np.zeros((1, 3)), 0.1, True, validate_args=True)


@pytest.mark.parametrize(
    "fn, label",
    [
        (klr.sparse_label_smoothing, 3),
        (klr.sparse_confidence_penalty, -1),
        (klr.sparse_categorical_focal_crossentropy, 1.5),
    ],
)
def test_bad_class_ids_give_nan_only_for_their_sample(fn, label):
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    # y_true as float so that 1.5 can be expressed; 0.0 stays a valid id.
    bad = to_numpy(fn(np.array([0.0, label]), logits, from_logits=True))
    good = to_numpy(fn(np.array([0]), logits[:1], from_logits=True))
    assert np.isnan(bad[1])
    np.testing.assert_allclose(bad[0], good[0], rtol=1e-12)


def test_bad_target_rows_give_nan_only_for_their_sample():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    value = to_numpy(
        klr.confidence_penalty(np.array([[1.0, 0, 0], [0.5, 0.2, 0.1]]), logits, 1.0, True)
    )
    assert np.isfinite(value[0]) and np.isnan(value[1])


@pytest.mark.parametrize(
    "fn, y",
    [
        (klr.sparse_label_relaxation, [0, 1]),
        (klr.label_relaxation, np.eye(3)[[0, 1]]),
        (klr.sparse_label_smoothing, [0, 1]),
        (klr.confidence_penalty, np.eye(3)[[0, 1]]),
        (klr.sparse_confidence_penalty, [0, 1]),
        (klr.sparse_categorical_focal_crossentropy, [0, 1]),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_logits_passed_as_probabilities_give_nan_not_a_renormalised_loss(fn, y):
    # Keras' cross-entropy renormalises such rows silently; row 0 is a distribution.
    rows = np.array([[0.7, 0.2, 0.1], [2.0, -1.0, 0.5]], "float32")
    value = to_numpy(fn(y, rows))
    assert np.isfinite(value[0]) and np.isnan(value[1])
    np.testing.assert_allclose(value[0], to_numpy(fn(y[:1], rows[:1]))[0], rtol=1e-6)
    with pytest.raises(ValueError, match="from_logits=True"):
        fn(y, rows, validate_args=True)


def test_binary_probabilities_outside_the_unit_interval_give_nan():
    value = to_numpy(
        klr.binary_label_relaxation(np.array([[1.0], [0.0]]), np.array([[0.9], [1.7]]))
    )
    assert np.isfinite(value[0]) and np.isnan(value[1])
