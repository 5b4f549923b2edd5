"""LabelRelaxation with soft targets: the credal set {p : p_k >= (1 - alpha) q_k}."""

import numpy as np
import pytest

import keras_label_relaxation as klr
from tests import oracle
from tests.conftest import finite_difference_grad, to_numpy, value_and_grad


def _random_case(rng, k, concentration):
    q = rng.dirichlet(np.full(k, concentration))
    logits = 2.0 * rng.standard_normal(k)
    return q, logits


@pytest.mark.parametrize("k", [2, 3, 10, 30])
@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.4])
def test_matches_numerical_projection(rng, k, alpha):
    cases = [_random_case(rng, k, c) for c in (0.3, 1.0, 5.0)]
    # Some soft targets with zeros (e.g. CutMix of two classes).
    q_sparse = np.zeros(k)
    q_sparse[:2] = [0.7, 0.3]
    cases.append((q_sparse, 2.0 * rng.standard_normal(k)))
    q = np.stack([c[0] for c in cases])
    logits = np.stack([c[1] for c in cases])
    p_hat = oracle.softmax(logits)
    value = to_numpy(klr.label_relaxation(q, logits, alpha, from_logits=True))
    for i in range(len(cases)):
        projected = oracle.project_soft_numerically(q[i], p_hat[i], alpha)
        assert np.all(projected >= (1 - alpha) * q[i] - 1e-9)
        np.testing.assert_allclose(value[i], oracle.kl(projected, p_hat[i]), rtol=1e-5, atol=1e-7)


def test_zero_inside_the_soft_set(rng):
    q = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    p_hat = np.array([[0.46, 0.46, 0.08], [0.2, 0.3, 0.5]])  # p_k >= 0.9 q_k everywhere
    value, grad = value_and_grad(lambda t: klr.label_relaxation(q, t, 0.1), p_hat)
    assert value == 0.0 and np.all(grad == 0.0)


def test_gradient_matches_finite_differences(rng):
    q = rng.dirichlet(np.ones(6), size=4)
    logits = 2.0 * rng.standard_normal((4, 6))

    def loss(t):
        return klr.label_relaxation(q, t, 0.2, True)

    _, grad = value_and_grad(loss, logits)
    np.testing.assert_allclose(grad, finite_difference_grad(loss, logits), rtol=1e-5, atol=1e-7)


def test_soft_path_reduces_to_closed_form_on_one_hot_rows(rng):
    # One soft row forces the whole batch through the projection; the one-hot rows
    # must still get the paper's closed form.
    labels = rng.integers(0, 10, 31)
    logits = 3.0 * rng.standard_normal((32, 10))
    q = np.eye(10)[np.append(labels, 0)]
    q[-1] = rng.dirichlet(np.ones(10))
    value = to_numpy(klr.label_relaxation(q, logits, 0.1, True))
    expected = oracle.label_relaxation(labels, oracle.softmax(logits[:-1]), 0.1)
    np.testing.assert_allclose(value[:-1], expected, rtol=1e-9, atol=1e-12)


def test_extreme_logits_finite(rng):
    q = rng.dirichlet(np.ones(5), size=8)
    q[:4, 2:] = 0.0
    q /= q.sum(-1, keepdims=True)
    logits = 1e4 * np.sign(rng.standard_normal((8, 5)))
    value, grad = value_and_grad(lambda t: klr.label_relaxation(q, t, 0.1, True), logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_nan_in_gives_nan_out():
    q = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    value = to_numpy(
        klr.label_relaxation(q, np.array([[np.nan, 0.0, 0.0], [0.0, 0.0, 0.0]]), 0.1, True)
    )
    assert np.isnan(value[0]) and np.isfinite(value[1])


def test_per_sample_alpha_with_soft_targets(rng):
    q = rng.dirichlet(np.ones(4), size=5)
    logits = 2.0 * rng.standard_normal((5, 4))
    alphas = np.array([0.01, 0.05, 0.1, 0.2, 0.4])
    batched = to_numpy(klr.label_relaxation(q, logits, alphas, True))
    looped = [
        to_numpy(klr.label_relaxation(q[i : i + 1], logits[i : i + 1], a, True))[0]
        for i, a in enumerate(alphas)
    ]
    np.testing.assert_allclose(batched, looped, rtol=1e-12)


def test_equals_label_relaxation_package_mixup_loss(rng):
    """Two-class mixes against `label-relaxation` 0.2.1's mixup_label_relaxation_loss."""
    torch = pytest.importorskip("torch")
    mixup = pytest.importorskip("label_relaxation.mixup")
    n, k = 256, 10
    logits = 3.0 * rng.standard_normal((n, k))
    a = rng.integers(0, k, n)
    b = rng.integers(0, k, n)
    lam = rng.uniform(0, 1, n)
    lam[:16] = 1.0  # pure targets, half of them confidently right (inside the set)
    logits[np.arange(8), a[:8]] += 10.0
    b[16:32] = a[16:32]  # same-class mixes
    q = lam[:, None] * np.eye(k)[a] + (1 - lam[:, None]) * np.eye(k)[b]
    for alpha in (0.01, 0.1, 0.3):
        expected = mixup.mixup_label_relaxation_loss(
            torch.tensor(logits), torch.tensor(a), torch.tensor(b), torch.tensor(lam), alpha, "none"
        ).numpy()
        value = to_numpy(klr.label_relaxation(q, logits, alpha, from_logits=True))
        assert (value == 0).any() and (value > 0).any()
        np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-12)
