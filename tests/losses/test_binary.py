"""BinaryLabelRelaxation against a per-output Bernoulli KL oracle."""

import numpy as np
import pytest

import keras_label_relaxation as klr
from tests import oracle
from tests.conftest import to_numpy, value_and_grad


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.3])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_matches_oracle(rng, alpha, from_logits):
    logits = 3.0 * rng.standard_normal((32, 5))
    targets = rng.integers(0, 2, (32, 5)).astype(np.float64)
    y_pred = logits if from_logits else _sigmoid(logits)
    value = to_numpy(klr.binary_label_relaxation(targets, y_pred, alpha, from_logits))
    expected = oracle.bernoulli_relaxation(targets, _sigmoid(logits), alpha)
    assert value.shape == (32,)
    np.testing.assert_allclose(value, expected, rtol=1e-8, atol=1e-12)


def test_equals_two_class_label_relaxation(rng):
    # A sigmoid output z is the two-class softmax of logits (z, 0).
    z = 3.0 * rng.standard_normal(64)
    t = rng.integers(0, 2, 64)
    binary = to_numpy(klr.binary_label_relaxation(t[:, None].astype(float), z[:, None], 0.1, True))
    two_class = to_numpy(
        klr.sparse_label_relaxation(1 - t, np.stack([z, np.zeros_like(z)], -1), 0.1, True)
    )
    np.testing.assert_allclose(binary, two_class, rtol=1e-9, atol=1e-12)


def test_zero_inside_and_gradient_finite_at_extremes():
    targets = np.array([[1.0, 0.0, 1.0, 0.0]])
    logits = np.array([[5.0, -5.0, 1e4, -1e4]])  # all inside for alpha=0.1
    value, grad = value_and_grad(
        lambda t: klr.binary_label_relaxation(targets, t, 0.1, True), logits
    )
    assert value == 0.0 and np.all(grad == 0.0)
    wrong = np.array([[-1e4, 1e4, -1e4, 1e4]])
    value, grad = value_and_grad(
        lambda t: klr.binary_label_relaxation(targets, t, 0.1, True), wrong
    )
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_class_reduction_and_per_sample_alpha(rng):
    logits = 3.0 * rng.standard_normal((6, 3)).astype("float32")
    targets = rng.integers(0, 2, (6, 3)).astype("float32")
    alphas = np.array([0.05, 0.1, 0.2, 0.05, 0.1, 0.2])
    value = to_numpy(klr.binary_label_relaxation(targets, logits, alphas, True))
    looped = [
        oracle.bernoulli_relaxation(targets[i], _sigmoid(logits[i].astype(float)), a)
        for i, a in enumerate(alphas)
    ]
    np.testing.assert_allclose(value, looped, rtol=1e-4, atol=1e-6)
    loss = klr.BinaryLabelRelaxation(alpha=0.1, from_logits=True, reduction="sum")
    expected = oracle.bernoulli_relaxation(targets, _sigmoid(logits.astype(float)), 0.1).sum()
    np.testing.assert_allclose(float(loss(targets, logits)), expected, rtol=1e-4)


def test_non_binary_targets_raise_with_validate_args():
    with pytest.raises(ValueError, match="binary targets must be 0 or 1"):
        klr.binary_label_relaxation(
            np.array([[0.5, 1.0]]), np.zeros((1, 2)), 0.1, True, validate_args=True
        )


def test_non_binary_targets_give_nan_for_their_sample():
    value = to_numpy(
        klr.binary_label_relaxation(np.array([[0.5, 1.0], [1.0, 0.0]]), np.zeros((2, 2)), 0.1, True)
    )
    assert np.isnan(value[0]) and np.isfinite(value[1])


def test_nan_in_gives_nan_out():
    value = to_numpy(
        klr.binary_label_relaxation(
            np.array([[1.0], [1.0]]), np.array([[np.nan], [9.0]]), 0.1, True
        )
    )
    assert np.isnan(value[0]) and value[1] == 0.0
