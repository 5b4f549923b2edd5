"""Set-valued label relaxation and robust data ambiguation (RDA) against independent references.

References, none of them the implementation itself:

* a float64 NumPy oracle written from the definition: the credal set
  ``Q_S = {p : sum_{k in S} p_k >= 1 - alpha}``, its nearest member ``q`` in KL
  (``q_k = (1 - alpha) p_hat_k / P`` in ``S``, ``alpha p_hat_k / (1 - P)``
  outside, ``p_hat`` itself when ``P >= 1 - alpha``) and the explicit sum
  ``sum_k q_k log(q_k / p_hat_k)``, confirmed for a few rows by SLSQP;
* central finite differences and the analytic gradient ``p_hat - q``;
* ``LabelRelaxation`` / ``sparse_label_relaxation`` for one-element sets;
* the authors' PyTorch formulation of RDA (``BetaLabelRelaxationLoss``).

The eager functional tests share a few array shapes (``(B, C)``, ``(FD_ROWS, C)``,
``(4, C)``): Keras' JAX backend compiles every eager op once per shape.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_label_relaxation.losses as klr
from tests import oracle
from tests.conftest import finite_difference_grad, to_numpy, value_and_grad

# Float64 tolerance: the oracle and the implementation compute the same float64 number by
# different formulas (an explicit sum of K terms q_k log(q_k / p_k) vs. the closed form in
# log P(S) through logsumexp/log1mexp), each with a few ulp of rounding per operation,
# amplified where log P(S) is large (sets of small mass). Near the boundary P = 1 - alpha the
# loss is O((P - (1 - alpha))^2) and both formulas cancel O(1) terms, leaving an absolute
# error of a few ulp of 1. Measured over 20 seeds on TF, JAX and torch: relative error
# <= 1.8e-13, absolute error of losses below 1e-3 <= 2.4e-16. rtol 1e-10 / atol 1e-13 keep
# a margin of ~500x above that, while a modelling error (wrong set, wrong proportions, a
# clip) moves the loss by far more than 1e-10.
RTOL64, ATOL64 = 1e-10, 1e-13
# Keras' torch backend averages float64 losses in float32 (sum_over_batch_size and
# mean_with_sample_weight return float32, Keras' own losses included): batch means are
# compared at float32 precision.
RTOL_MEAN = 1e-6

B, C = 48, 6  # rows and classes of the functional tests
FD_ROWS = 12  # rows of the finite-difference tests


# ---------------------------------------------------------------------------
# The float64 oracle, from the definition.
# ---------------------------------------------------------------------------


def nearest_member(mask, p_hat, alpha):
    """The KL projection of ``p_hat`` onto {p : sum_{k in S} p_k >= 1 - alpha}, explicitly."""
    mask = np.asarray(mask, dtype=bool)
    p_hat = np.asarray(p_hat, dtype=np.float64)
    inside = float(p_hat[mask].sum())
    if inside >= 1.0 - alpha:
        return p_hat.copy()
    return np.where(mask, (1.0 - alpha) * p_hat / inside, alpha * p_hat / (1.0 - inside))


def set_relaxation_oracle(masks, p_hat, alpha):
    """Per row KL(q || p_hat), q the nearest member of the credal set of the row's set."""
    masks = np.asarray(masks).reshape(-1, np.shape(masks)[-1])
    p_hat = np.asarray(p_hat, dtype=np.float64).reshape(masks.shape)
    alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (len(masks),))
    return np.array(
        [oracle.kl(nearest_member(m, p, a), p) for m, p, a in zip(masks, p_hat, alphas)]
    )


def rda_sets(labels, p_hat, beta):
    """RDA's candidate sets: the label plus every class predicted above ``beta`` (strictly)."""
    p_hat = np.asarray(p_hat, dtype=np.float64)
    return (np.eye(p_hat.shape[-1])[labels] > 0) | (p_hat > beta)


def minimise_numerically(mask, p_hat, alpha):
    """min KL(p || p_hat) over the simplex subject to sum_{k in S} p_k >= 1 - alpha (SLSQP)."""
    from scipy.optimize import minimize

    mask = np.asarray(mask, dtype=np.float64)
    uniform_on_set = mask / mask.sum()
    start = (1.0 - alpha / 2) * uniform_on_set + (alpha / 2) * p_hat  # strictly feasible
    result = minimize(
        lambda p: float(np.sum(p * np.log(p / p_hat))),
        start,
        jac=lambda p: np.log(p / p_hat) + 1.0,
        method="SLSQP",
        bounds=[(1e-12, 1.0)] * len(p_hat),
        constraints=[
            {"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": lambda p: np.ones_like(p)},
            {"type": "ineq", "fun": lambda p: p @ mask - (1.0 - alpha), "jac": lambda p: mask},
        ],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    # Status 8 ("positive directional derivative in line search"): no progress at machine
    # precision; feasibility is checked below and optimality against the oracle.
    assert result.success or result.status == 8, result.message
    p = result.x
    assert abs(p.sum() - 1.0) < 1e-9 and p @ mask >= 1.0 - alpha - 1e-9
    return p


def _random_sets(rng, n, k):
    """n masks whose sizes cycle through 1..k in pairs of rows (random members)."""
    masks = np.zeros((n, k))
    for i in range(n):
        masks[i, rng.permutation(k)[: (i // 2) % k + 1]] = 1.0
    return masks


def _set_data(rng, n=B, k=C):
    """Logits and candidate masks, the even rows pushed inside their set (every set size
    occurs in even and odd rows)."""
    masks = _random_sets(rng, n, k)
    logits = rng.uniform(-2.0, 2.0, (n, k))
    logits[::2] += 7.0 * masks[::2]
    logits[1::8] -= 9.0 * masks[1::8]  # a few sets of small mass, P(S) ~ 1e-5 .. 1e-3
    return logits, masks


def _jit(fn):
    """``fn`` compiled on JAX (one compilation instead of one per eager op and shape)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return fn


# ---------------------------------------------------------------------------
# 1. Values against the oracle.
# ---------------------------------------------------------------------------


def test_oracle_nearest_member_is_the_numerical_minimiser(rng):
    alpha = 0.2
    logits, masks = _set_data(rng, 10, 5)
    probs = oracle.softmax(logits)
    outside = 0
    for mask, p_hat in zip(masks, probs):
        q = nearest_member(mask, p_hat, alpha)
        assert abs(q.sum() - 1.0) < 1e-12 and q @ mask >= 1.0 - alpha - 1e-12
        numeric = minimise_numerically(mask, p_hat, alpha)
        # SLSQP finds no member of the set closer to p_hat than q, and it finds q. (It meets
        # the constraint to ~1e-12, along which the KL has a slope of log((1 - alpha) / P),
        # ~12 for the small sets: a slack of 1e-9.)
        assert oracle.kl(numeric, p_hat) >= oracle.kl(q, p_hat) - 1e-9
        assert oracle.kl(numeric, p_hat) == pytest.approx(oracle.kl(q, p_hat), abs=1e-9)
        np.testing.assert_allclose(numeric, q, atol=1e-5)
        outside += oracle.kl(q, p_hat) > 0
    assert 3 <= outside <= 7  # both kinds of rows were checked


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_matches_the_float64_oracle(rng, from_logits):
    logits, masks = _set_data(rng)
    probs = oracle.softmax(logits)
    mass = (probs * masks).sum(-1)
    assert 1e-6 < mass.min() < 1e-4  # small sets' mass, yet above keras.backend.epsilon()
    y_pred = logits if from_logits else probs
    sizes = masks.sum(-1)
    for alpha in (0.01, 0.05, 0.1, 0.3):
        expected = set_relaxation_oracle(masks, probs, alpha)
        # Every set size 1..C occurs inside the set, and 1..C-1 outside it.
        assert set(sizes[expected == 0]) == set(range(1, C + 1))
        assert set(sizes[expected > 1e-3]) == set(range(1, C))
        value = to_numpy(klr.set_label_relaxation(masks, y_pred, alpha, from_logits))
        assert value.dtype == np.float64
        np.testing.assert_allclose(value, expected, rtol=RTOL64, atol=ATOL64)
        kwargs = {"from_logits": from_logits, "dtype": "float64"}
        loss = klr.SetLabelRelaxation(alpha, reduction=None, **kwargs)
        value = to_numpy(loss(masks, y_pred))
        np.testing.assert_allclose(value, expected, rtol=RTOL64, atol=ATOL64)
        total = klr.SetLabelRelaxation(alpha, reduction="sum", **kwargs)
        np.testing.assert_allclose(to_numpy(total(masks, y_pred)), expected.sum(), rtol=RTOL64)
        mean = klr.SetLabelRelaxation(alpha, **kwargs)
        np.testing.assert_allclose(to_numpy(mean(masks, y_pred)), expected.mean(), rtol=RTOL_MEAN)
        # float32 inputs compute in float32 (float32 rounding of logits and probabilities).
        value32 = to_numpy(
            klr.set_label_relaxation(masks, y_pred.astype("float32"), alpha, from_logits)
        )
        assert value32.dtype == np.float32
        np.testing.assert_allclose(value32, expected, rtol=1e-4, atol=1e-5)


def test_candidate_sets_builds_the_masks(rng):
    labels = rng.integers(0, C, B)
    extra = rng.random((B, C)) < 0.3
    masks = to_numpy(klr.candidate_sets(labels, C, extra))
    assert masks.dtype == np.float32
    np.testing.assert_array_equal(masks, (np.eye(C)[labels] > 0) | extra)
    np.testing.assert_array_equal(to_numpy(klr.candidate_sets(labels, C)), np.eye(C)[labels])
    logits = 2.0 * rng.standard_normal((B, C))
    value = to_numpy(klr.set_label_relaxation(masks, logits, 0.1, from_logits=True))
    expected = set_relaxation_oracle(masks, oracle.softmax(logits), 0.1)
    np.testing.assert_allclose(value, expected, rtol=RTOL64, atol=ATOL64)


def test_per_sample_alpha_tensor(rng):
    logits, masks = _set_data(rng)
    alphas = rng.uniform(0.02, 0.5, B)
    value = to_numpy(klr.set_label_relaxation(masks, logits, ops.convert_to_tensor(alphas), True))
    expected = set_relaxation_oracle(masks, oracle.softmax(logits), alphas)
    np.testing.assert_allclose(value, expected, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "mask"])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_data_ambiguation_matches_the_oracle(rng, sparse, from_logits):
    alpha, beta = 0.05, 0.3
    logits = 3.0 * rng.standard_normal((B, C))
    probs = oracle.softmax(logits)
    assert np.abs(probs - beta).min() > 1e-9  # no class at the threshold
    labels = rng.integers(0, C, B)
    given = np.eye(C)[labels]
    if not sparse:  # a given set of candidates, widened by the model's own
        given = np.maximum(given, rng.random((B, C)) < 0.2)
    sets = (given > 0) | (probs > beta)
    expected = set_relaxation_oracle(sets, probs, alpha)
    assert (sets.sum(-1) > given.sum(-1)).sum() > 10  # the threshold does add classes
    assert (expected == 0).sum() > 5 and (expected > 1e-3).sum() > 15
    y_pred = logits if from_logits else probs
    target = labels if sparse else given
    value = to_numpy(klr.data_ambiguation(target, y_pred, alpha, beta, sparse, from_logits))
    np.testing.assert_allclose(value, expected, rtol=RTOL64, atol=ATOL64)
    loss = klr.DataAmbiguation(
        alpha, beta, sparse=sparse, from_logits=from_logits, reduction=None, dtype="float64"
    )
    np.testing.assert_allclose(to_numpy(loss(target, y_pred)), expected, rtol=RTOL64, atol=ATOL64)
    # Not the label relaxation loss of the given set alone.
    assert np.abs(set_relaxation_oracle(given, probs, alpha) - expected).max() > 1e-2


def test_data_ambiguation_threshold_is_strict():
    # p = (1/2, 1/4, 1/8, 1/16, 1/32, 1/32) (exact in binary), label 1: beta = 1/2 leaves
    # class 0 out (p_0 > beta is false), a beta just below 1/2 takes it in.
    probs = np.tile(2.0 ** -np.array([1, 2, 3, 4, 5, 5]), (4, 1))
    labels, alpha = np.ones(4, "int64"), 0.05
    at = to_numpy(klr.data_ambiguation(labels, probs, alpha, beta=0.5))
    below = to_numpy(klr.data_ambiguation(labels, probs, alpha, beta=0.5 - 1e-9))
    alone, joined = np.eye(C)[labels], np.eye(C)[labels] + np.eye(C)[np.zeros(4, "int64")]
    np.testing.assert_allclose(at, set_relaxation_oracle(alone, probs, alpha), rtol=RTOL64)
    np.testing.assert_allclose(below, set_relaxation_oracle(joined, probs, alpha), rtol=RTOL64)
    assert np.all(below < at)


# ---------------------------------------------------------------------------
# 2. Gradients (on JAX through jax.jit, as in a compiled training step).
# ---------------------------------------------------------------------------


def _outside_rows(rng, alpha, n=FD_ROWS, k=C, margin=0.05):
    """Logits and masks of ``n`` rows with P(S) < 1 - alpha - margin, set sizes 1..k-1."""
    logits, masks = [], []
    while len(logits) < n:
        z = 2.0 * rng.standard_normal(k)
        mask = np.zeros(k)
        mask[rng.permutation(k)[: len(logits) % (k - 1) + 1]] = 1.0
        if (oracle.softmax(z) * mask).sum() < 1.0 - alpha - margin:
            logits.append(z)
            masks.append(mask)
    return np.array(logits), np.array(masks)


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_gradient_matches_finite_differences(rng, from_logits):
    alpha = 0.2
    logits, masks = _outside_rows(rng, alpha)
    x = logits if from_logits else oracle.softmax(logits)
    loss = _jit(lambda t: klr.set_label_relaxation(masks, t, alpha, from_logits))
    value, grad = value_and_grad(loss, x)
    expected = set_relaxation_oracle(masks, oracle.softmax(logits), alpha)
    assert value == pytest.approx(expected.sum(), rel=RTOL64)
    np.testing.assert_allclose(grad, finite_difference_grad(loss, x), rtol=1e-5, atol=1e-7)


def test_logit_gradient_is_prediction_minus_nearest_member(rng):
    # d KL(q || p_hat) / dz = p_hat - q (q the nearest member, held fixed: envelope theorem).
    alpha = 0.1
    logits, masks = _set_data(rng)
    probs = oracle.softmax(logits)
    loss = _jit(lambda t: klr.set_label_relaxation(masks, t, alpha, True))
    _, grad = value_and_grad(loss, logits)
    members = np.stack([nearest_member(m, p, alpha) for m, p in zip(masks, probs)])
    np.testing.assert_allclose(grad, probs - members, atol=1e-12)
    inside = set_relaxation_oracle(masks, probs, alpha) == 0
    assert inside.sum() > 5 and np.all(grad[inside] == 0.0)  # exactly zero inside the set


def test_data_ambiguation_gradient_matches_finite_differences(rng):
    alpha, beta = 0.05, 0.3
    logits = 2.0 * rng.standard_normal((FD_ROWS, C))
    labels = rng.integers(0, C, FD_ROWS)
    probs = oracle.softmax(logits)
    # Steps of 1e-6 must not move a class across the threshold or a row across the boundary.
    assert np.abs(probs - beta).min() > 1e-4
    sets = rda_sets(labels, probs, beta)
    assert np.abs((probs * sets).sum(-1) - (1 - alpha)).min() > 1e-4
    assert (sets.sum(-1) > 1).sum() >= 3
    loss = _jit(lambda t: klr.data_ambiguation(labels, t, alpha, beta, from_logits=True))
    _, grad = value_and_grad(loss, logits)
    np.testing.assert_allclose(grad, finite_difference_grad(loss, logits), rtol=1e-5, atol=1e-7)


def test_extreme_logits_give_finite_loss_and_gradient(rng):
    logits = (1e4 * np.sign(rng.standard_normal((B, C)))).astype("float32")
    masks = _random_sets(rng, B, C)
    loss = _jit(lambda t: klr.set_label_relaxation(masks, t, 0.1, True))
    value, grad = value_and_grad(loss, logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    # A set of two classes 2e4 below the top class: log P(S) = -2e4 + log 2, and the
    # closed form in log space (float32 carries it to 1e-6).
    logits[:] = -1e4
    logits[:, 0] = 1e4
    masks[:] = 0.0
    masks[:, 1:3] = 1.0
    value = to_numpy(loss(logits))
    expected = 0.9 * (np.log(0.9) + 2e4 - np.log(2.0)) + 0.1 * np.log(0.1)
    np.testing.assert_allclose(value, np.full(B, expected), rtol=1e-6)


# ---------------------------------------------------------------------------
# 3. One-element sets are label relaxation, to the last bit.
# ---------------------------------------------------------------------------


def _one_element_data(rng, dtype, from_logits):
    logits = 3.0 * rng.standard_normal((B, C))
    labels = rng.integers(0, C, B)
    logits[::2] += 8.0 * np.eye(C)[labels[::2]]  # some rows inside the set
    x = (logits if from_logits else oracle.softmax(logits)).astype(dtype)
    return x, labels, np.eye(C, dtype=dtype)[labels]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_one_element_set_is_label_relaxation_bitwise(rng, dtype, from_logits):
    # Eager calls too: JAX runs label_relaxation's one-hot branch (inside ops.cond) compiled
    # even eagerly, which rounds differently (1 ulp in float32, ~30 ulp in float64) from the
    # same ops run one by one; set_label_relaxation takes a batch of one-element sets through
    # the same kind of cond branch. This test failed on JAX before that.
    alpha = 0.1
    x, _, one_hot = _one_element_data(rng, dtype, from_logits)
    functional = to_numpy(klr.set_label_relaxation(one_hot, x, alpha, from_logits))
    reference = to_numpy(klr.label_relaxation(one_hot, x, alpha, from_logits))
    assert functional.dtype == np.dtype(dtype)
    assert (reference == 0).sum() > 5 and (reference > 0).sum() > 20
    np.testing.assert_allclose(functional, reference, rtol=1e-5)  # the same loss, ...
    assert np.array_equal(functional, reference)  # ... to the last bit
    kwargs = {"from_logits": from_logits, "reduction": None, "dtype": dtype}
    ours = to_numpy(klr.SetLabelRelaxation(alpha, **kwargs)(one_hot, x))
    theirs = to_numpy(klr.LabelRelaxation(alpha, **kwargs)(one_hot, x))
    assert np.array_equal(ours, theirs)
    assert np.array_equal(ours, functional)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the eager test covers TF/torch")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_one_element_set_is_label_relaxation_bitwise_under_jit(rng, dtype, from_logits):
    import jax

    x, _, one_hot = _one_element_data(rng, dtype, from_logits)
    ours = jax.jit(lambda t: klr.set_label_relaxation(one_hot, t, 0.1, from_logits))(x)
    theirs = jax.jit(lambda t: klr.label_relaxation(one_hot, t, 0.1, from_logits))(x)
    assert np.array_equal(to_numpy(ours), to_numpy(theirs))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_no_ambiguation_is_sparse_label_relaxation_bitwise(rng, dtype, from_logits):
    alpha = 0.1
    x, labels, _ = _one_element_data(rng, dtype, from_logits)
    sparse = to_numpy(klr.sparse_label_relaxation(labels, x, alpha, from_logits))
    assert (sparse == 0).sum() > 5 and (sparse > 0).sum() > 20
    # beta = 1 as a tensor (a warm-up's value): no class joins the label.
    no_beta = ops.convert_to_tensor(1.0)
    rda = to_numpy(klr.data_ambiguation(labels, x, alpha, no_beta, True, from_logits))
    assert rda.dtype == np.dtype(dtype)
    assert np.array_equal(rda, sparse)
    # The class during its warm-up: DataAmbiguation's beta state at 1.
    kwargs = {"from_logits": from_logits, "reduction": None, "dtype": dtype}
    warm = klr.DataAmbiguation(alpha, 0.3, warmup_epochs=2, **kwargs)
    assert warm.beta_state.set_epoch(1) == 1.0
    plain = klr.SparseLabelRelaxation(alpha, **kwargs)
    assert np.array_equal(to_numpy(warm(labels, x)), to_numpy(plain(labels, x)))


# ---------------------------------------------------------------------------
# 4. RDA against the authors' PyTorch formulation.
# ---------------------------------------------------------------------------


def authors_beta_label_relaxation(logits, target, alpha, beta):
    """``BetaLabelRelaxationLoss`` of julilien/MitigatingLabelNoiseDataAmbiguation
    (label_smoothing.py L65-144, commit 4903ae6), restated from its description, per
    sample; returns the per-sample losses and the gradient of their sum w.r.t. the logits."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional

    logits = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(target, dtype=torch.int64)
    pred_log = functional.log_softmax(logits, dim=-1)
    with torch.no_grad():
        pred = functional.softmax(logits.detach(), dim=-1)
        one_hot = functional.one_hot(target, logits.shape[-1]).bool()
        mask = (pred > beta) | one_hot
        beta_sum = torch.sum(mask * pred, dim=-1, keepdim=True)
        non_beta_sum = torch.sum(~mask * pred, dim=-1, keepdim=True)
        zero = torch.zeros_like(pred)
        inside = torch.where(beta_sum > 0, (1 - alpha) * pred / beta_sum, zero)
        outside = torch.where(non_beta_sum > 0, alpha * pred / non_beta_sum, zero)
        q = torch.where(mask, inside, outside)
    divergence = torch.sum(
        functional.kl_div(pred_log, q, log_target=False, reduction="none"), dim=-1
    )
    loss = torch.where(beta_sum[:, 0] >= 1 - alpha, torch.zeros_like(divergence), divergence)
    loss.sum().backward()
    return loss.detach().numpy(), logits.grad.numpy()


@pytest.mark.parametrize(("alpha", "beta"), [(0.05, 0.2), (0.2, 0.3)])
def test_matches_the_authors_pytorch_formulation(rng, alpha, beta):
    pytest.importorskip("torch")
    logits = 2.0 * rng.standard_normal((B, C))
    labels = rng.integers(0, C, B)
    probs = oracle.softmax(logits)
    assert np.abs(probs - beta).min() > 1e-9  # both softmaxes put every class on one side
    joining = ((probs > beta) & (np.eye(C)[labels] == 0)).sum(-1)
    assert (joining >= 2).sum() >= 2 and (joining == 1).sum() >= 5  # several classes join
    expected, expected_grad = authors_beta_label_relaxation(logits, labels, alpha, beta)
    assert (expected == 0).sum() >= 3 and (expected > 1e-3).sum() >= 10
    value = to_numpy(klr.data_ambiguation(labels, logits, alpha, beta, from_logits=True))
    np.testing.assert_allclose(value, expected, rtol=RTOL64, atol=ATOL64)
    loss = klr.DataAmbiguation(alpha, beta, from_logits=True, reduction=None, dtype="float64")
    total, grad = value_and_grad(_jit(lambda t: loss(labels, t)), logits)
    assert total == pytest.approx(expected.sum(), rel=RTOL64)
    # Gradients: autodiff of the closed form vs. torch autograd of KL(q || p_hat), q fixed.
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)
    # Their reduction, the batch mean, is the default reduction's value.
    mean = klr.DataAmbiguation(alpha, beta, from_logits=True, dtype="float64")
    assert float(mean(labels, logits)) == pytest.approx(expected.mean(), rel=RTOL_MEAN)


# ---------------------------------------------------------------------------
# 5. Keras integration: compiled fit/evaluate, sample weights, masks, per-sample alpha,
#    the beta schedule, saving.
# ---------------------------------------------------------------------------

N, D, K = B, 6, C  # the functional tests' shape (JAX compiles once)


@pytest.fixture
def data(rng):
    x = rng.standard_normal((N, D)).astype("float32")
    y = rng.integers(0, K, N)
    sets = to_numpy(klr.candidate_sets(y, K, rng.random((N, K)) < 0.3))
    return x, y, sets


def _model(loss, learning_rate=0.0, metrics=(), seed=0, wrap=False):
    keras.utils.set_random_seed(seed)
    # Logits of standard deviation ~2.5: confident predictions, many above RDA's thresholds.
    inner = keras.Sequential(
        [
            keras.Input((D,)),
            keras.layers.Dense(K, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0)),
        ]
    )
    model = klr.PerSampleAlpha(inner) if wrap else inner
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss=loss,
        metrics=list(metrics),
    )
    return model


def _probs(model, x):
    return oracle.softmax(to_numpy(model(x)).astype(np.float64))


def _assert_off_threshold(probs, *betas):
    # The model's float32 softmax (compiled) vs. float64 of the eager float32 logits here
    # differ by a few float32 ulp (< 5e-7): no class may sit that close to a threshold, or
    # the two could disagree on the set.
    for beta in betas:
        assert np.abs(probs - float(np.float32(beta))).min() > 1e-6, beta


@pytest.mark.parametrize("kind", ["set", "rda"])
def test_compiled_fit_and_evaluate_equal_the_oracle(data, rng, kind):
    x, y, sets = data
    alpha, beta = 0.1, 0.3
    if kind == "set":
        loss, target = klr.SetLabelRelaxation(alpha, from_logits=True), sets
    else:
        loss, target = klr.DataAmbiguation(alpha, beta, from_logits=True), y
    w = rng.uniform(0.0, 2.0, N).astype("float32")
    model = _model(loss)
    history = model.fit(x, target, sample_weight=w, batch_size=N, shuffle=False, verbose=0)
    probs = _probs(model, x)
    if kind == "rda":
        _assert_off_threshold(probs, beta)
        sets = rda_sets(y, probs, beta)
        assert (sets.sum(-1) > 1).sum() > 5  # the threshold adds classes
    per_example = set_relaxation_oracle(sets, probs, alpha)
    assert (per_example == 0).sum() > 3 and (per_example > 1e-3).sum() > 10
    weighted = float(np.sum(w * per_example) / N)  # Keras' sum_over_batch_size
    assert history.history["loss"][0] == pytest.approx(weighted, rel=1e-5)
    logs = model.evaluate(x, target, sample_weight=w, batch_size=N, return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(weighted, rel=1e-5)
    # A fresh model (same weights) for the (N, 1) weights: evaluating one compiled model with
    # (N,) and then (N, 1) weights fails on TensorFlow inside Keras' own loss reduction
    # (the retrace relaxes the weights to unknown rank; Keras' CategoricalCrossentropy too).
    logs = _model(loss).evaluate(
        x, target, sample_weight=w[:, None], batch_size=N, return_dict=True, verbose=0
    )
    assert logs["loss"] == pytest.approx(weighted, rel=1e-5)


def test_training_lowers_the_loss(data):
    x, y, sets = data
    model = _model(klr.SetLabelRelaxation(0.1, from_logits=True), learning_rate=0.5)
    history = model.fit(x, sets, batch_size=16, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[2] < losses[0]


@pytest.mark.parametrize("kind", ["set", "rda"])
def test_keras_mask_is_respected(rng, kind):
    alpha, beta, steps = 0.1, 0.3, 6
    tokens = rng.integers(1, 10, (16, steps))
    for i, length in enumerate(rng.integers(2, steps + 1, 16)):
        tokens[i, length:] = 0  # padding
    keep = tokens != 0
    labels = rng.integers(0, K, (16, steps))
    # Padded steps carry valid targets too: their (finite) losses must not count.
    sets = to_numpy(klr.candidate_sets(labels, K, rng.random((16, steps, K)) < 0.3))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((steps,))
    hidden = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    outputs = keras.layers.Dense(K, kernel_initializer=keras.initializers.RandomNormal(stddev=1.5))(
        hidden
    )
    model = keras.Model(inputs, outputs)
    if kind == "set":
        loss, target = klr.SetLabelRelaxation(alpha, from_logits=True), sets
    else:
        loss, target = klr.DataAmbiguation(alpha, beta, from_logits=True), labels
    model.compile(optimizer="sgd", loss=loss)
    value = model.evaluate(tokens, target, batch_size=16, verbose=0)
    logits = model(tokens)
    probs = oracle.softmax(to_numpy(logits).astype(np.float64))
    if kind == "rda":
        _assert_off_threshold(probs, beta)
        sets = rda_sets(labels, probs, beta)
    per_step = set_relaxation_oracle(sets, probs, alpha).reshape(16, steps)
    expected = per_step[keep].mean()
    assert abs(expected - per_step.mean()) > 1e-3  # the test can tell the two apart
    assert value == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", ["set", "rda"])
def test_per_sample_alpha(data, rng, kind):
    x, y, sets = data
    alpha = rng.uniform(0.02, 0.5, N).astype("float32")
    beta = 0.3
    if kind == "set":
        loss, target = klr.SetLabelRelaxation(alpha="per_sample", from_logits=True), sets
    else:
        loss, target = klr.DataAmbiguation(alpha="per_sample", beta=beta, from_logits=True), y
    model = _model(loss, wrap=True, metrics=["accuracy"])
    targets = klr.alpha_targets(target, alpha)
    history = model.fit(x, targets, batch_size=N, shuffle=False, verbose=0)
    logs = model.evaluate(x, targets, batch_size=N, return_dict=True, verbose=0)
    probs = _probs(model, x)
    if kind == "rda":
        _assert_off_threshold(probs, beta)
        sets = rda_sets(y, probs, beta)
    expected = float(set_relaxation_oracle(sets, probs, alpha.astype(np.float64)).mean())
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    # The metrics see the plain targets (Keras' "accuracy": categorical for the masks).
    plain = sets.argmax(-1) if kind == "set" else y
    assert logs["accuracy"] == pytest.approx(np.mean(probs.argmax(-1) == plain), abs=1e-6)
    shared = float(set_relaxation_oracle(sets, probs, float(alpha.mean())).mean())
    assert abs(expected - shared) > 1e-3  # not one shared alpha


def _cosine(epoch, start=0.75, end=0.6, epochs=3):
    """CosineAlpha's formula, written out."""
    return end + (start - end) * (1.0 + math.cos(math.pi * min(epoch / epochs, 1.0))) / 2.0


def test_beta_schedule_with_warmup_in_fit_evaluate_and_save(rng, tmp_path):
    n, alpha = 256, 0.05  # enough examples for every epoch's beta to change the loss
    x = rng.standard_normal((n, D)).astype("float32")
    y = rng.integers(0, K, n)
    loss = klr.DataAmbiguation(
        alpha=alpha, beta=klr.CosineAlpha(0.75, 0.6, epochs=3), warmup_epochs=1, from_logits=True
    )
    assert [s.name for s in loss.schedule_states] == ["beta"]
    model = _model(loss, metrics=loss.schedule_states)
    history = model.fit(
        x, y, batch_size=n, epochs=4, shuffle=False, verbose=0, callbacks=[klr.AlphaScheduler()]
    )
    betas = [1.0] + [_cosine(e) for e in range(3)]  # warm-up: no ambiguation
    assert betas[1:3] == pytest.approx([0.75, 0.7125], abs=1e-12)
    assert history.history["beta"] == pytest.approx(betas, abs=1e-7)
    probs = _probs(model, x)
    _assert_off_threshold(probs, *betas[1:])
    expected = [
        float(set_relaxation_oracle(rda_sets(y, probs, np.float32(b)), probs, alpha).mean())
        for b in betas
    ]
    assert len(set(np.round(expected, 6))) == 4  # each epoch's beta changes the loss
    np.testing.assert_allclose(
        expected[0], oracle.label_relaxation(y, probs, alpha).mean(), rtol=1e-12
    )
    assert history.history["loss"] == pytest.approx(expected, rel=1e-5)

    # Without the scheduler, beta was set by nobody: NaN, not the last epoch's value.
    assert np.isnan(model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)["loss"])
    scheduled = model.evaluate(
        x, y, batch_size=n, verbose=0, return_dict=True, callbacks=[klr.AlphaScheduler()]
    )
    assert scheduled["beta"] == pytest.approx(betas[-1], abs=1e-7)
    assert scheduled["loss"] == pytest.approx(expected[-1], rel=1e-5)

    path = tmp_path / "rda.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    restored = loaded.loss
    assert type(restored) is klr.DataAmbiguation
    config = restored.get_config()
    assert config["alpha"] == alpha and config["warmup_epochs"] == 1
    assert config["from_logits"] is True and config["sparse"] is True
    threshold = restored.beta_state.schedule
    assert type(threshold) is klr.AmbiguationThreshold
    assert threshold.warmup == 1 and type(threshold.beta) is klr.CosineAlpha
    assert threshold.beta.get_config() == klr.CosineAlpha(0.75, 0.6, epochs=3).get_config()
    assert restored.beta_state.epoch == 3  # the last epoch trained
    assert [threshold(e) for e in range(6)] == [loss.beta_state.schedule(e) for e in range(6)]
    assert np.isnan(loaded.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)["loss"])
    reloaded = loaded.evaluate(
        x, y, batch_size=n, verbose=0, return_dict=True, callbacks=[klr.AlphaScheduler()]
    )
    assert reloaded["beta"] == pytest.approx(betas[-1], abs=1e-7)
    assert reloaded["loss"] == pytest.approx(scheduled["loss"], rel=1e-6)
    # One state object for the loss and the compiled metric (built by the first step).
    assert id(restored.beta_state.alpha) in {id(v) for v in loaded.metrics_variables}


def _loss_variants():
    return [
        klr.SetLabelRelaxation(alpha=0.2, from_logits=True, reduction="sum"),
        klr.DataAmbiguation(alpha=0.1, beta=0.5, sparse=False, from_logits=True, name="rda"),
        klr.DataAmbiguation(alpha=0.05, beta=0.4, from_logits=True),
        klr.DataAmbiguation(
            alpha=0.05, beta=klr.LinearAlpha(0.7, 0.5, epochs=2), warmup_epochs=2, from_logits=True
        ),
    ]


def _targets_for(loss, y, sets):
    return y if loss.get_config().get("sparse", False) else sets


@pytest.mark.parametrize("index", range(4))
def test_config_round_trip(data, index):
    x, y, sets = data
    loss = _loss_variants()[index]
    logits = 3.0 * x[:, :K]
    target = _targets_for(loss, y, sets)
    serialized = keras.losses.serialize(loss)
    restored = keras.losses.deserialize(serialized)
    clone = type(loss).from_config(loss.get_config())
    assert type(restored) is type(loss) and type(clone) is type(loss)
    assert keras.losses.serialize(restored) == serialized
    assert keras.losses.serialize(clone) == serialized
    scheduled = getattr(loss, "beta_state", None) is not None
    if scheduled:
        assert restored.get_config()["warmup_epochs"] == 2
        for state in (loss.beta_state, restored.beta_state, clone.beta_state):
            assert state.set_epoch(3) == pytest.approx(0.6)  # after the warm-up of 2
    value = float(loss(target, logits))
    assert np.isfinite(value)
    for other in (restored, clone):
        assert float(other(target, logits)) == value


@pytest.mark.parametrize("index", range(2))
def test_keras_file_round_trip_with_safe_mode(data, tmp_path, index):
    x, y, sets = data
    loss = _loss_variants()[index]
    target = _targets_for(loss, y, sets)
    model = _model(loss)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(
        loaded.evaluate(x, target, verbose=0), model.evaluate(x, target, verbose=0), rtol=1e-6
    )


# ---------------------------------------------------------------------------
# 6. Bad input is loud.
# ---------------------------------------------------------------------------


def test_empty_candidate_set_is_nan_for_that_sample_only(rng):
    logits = 2.0 * rng.standard_normal((4, C))
    masks = _random_sets(rng, 4, C)
    masks[2] = 0.0
    kept = [0, 1, 3]
    expected = set_relaxation_oracle(masks[kept], oracle.softmax(logits[kept]), 0.1)
    for value in (
        klr.set_label_relaxation(masks, logits, 0.1, from_logits=True),
        klr.SetLabelRelaxation(0.1, from_logits=True, reduction=None, dtype="float64")(
            masks, logits
        ),
        klr.data_ambiguation(masks, logits, 0.1, 0.3, sparse=False, from_logits=True),
    ):
        value = to_numpy(value)
        assert np.isnan(value[2]) and np.isfinite(value[kept]).all()
    value = to_numpy(klr.set_label_relaxation(masks, logits, 0.1, from_logits=True))
    np.testing.assert_allclose(value[kept], expected, rtol=RTOL64, atol=ATOL64)
    # An entry other than 0/1 is not a set either.
    halves = masks.copy()
    halves[1, 0] = 0.5
    assert np.isnan(to_numpy(klr.set_label_relaxation(halves, logits, 0.1, True))[1])
    # validate_args: a ValueError naming y_true and the row, in eager mode.
    for call in (
        lambda: klr.set_label_relaxation(masks, logits, 0.1, True, validate_args=True),
        lambda: klr.SetLabelRelaxation(0.1, from_logits=True, validate_args=True)(masks, logits),
        lambda: klr.data_ambiguation(masks, logits, 0.1, 0.3, False, True, validate_args=True),
        lambda: klr.DataAmbiguation(sparse=False, from_logits=True, validate_args=True)(
            masks, logits
        ),
    ):
        with pytest.raises(ValueError, match=r"`y_true`.*Received: row \(2,\)"):
            call()


def test_class_axis_mismatch_names_both_shapes():
    masks, logits = np.ones((4, C + 1)), np.zeros((4, C))
    pattern = rf"y_true.shape=\(4, {C + 1}\), y_pred.shape=\(4, {C}\)"
    for call in (
        lambda: klr.set_label_relaxation(masks, logits, 0.1, True),
        lambda: klr.SetLabelRelaxation(0.1, from_logits=True)(masks, logits),
        lambda: klr.data_ambiguation(masks, logits, 0.1, 0.3, sparse=False, from_logits=True),
        lambda: klr.DataAmbiguation(sparse=False, from_logits=True)(masks, logits),
    ):
        with pytest.raises(ValueError, match=pattern):
            call()
    with pytest.raises(ValueError, match=rf"y_true.shape=\(5,\), y_pred.shape=\(4, {C}\)"):
        klr.data_ambiguation([0, 1, 2, 3, 4], logits, from_logits=True)


@pytest.mark.parametrize("beta", [0, 1, 1.0, 1.5, -0.1, float("nan"), True, "0.5", None])
def test_beta_outside_the_interval_raises_naming_beta(beta):
    pattern = r"argument `beta`.*Received: beta="
    with pytest.raises(ValueError, match=pattern):
        klr.DataAmbiguation(beta=beta)
    with pytest.raises(ValueError, match=pattern):
        klr.DataAmbiguation(beta=beta, warmup_epochs=2)
    with pytest.raises(ValueError, match=pattern):
        klr.AmbiguationThreshold(beta, 1)
    if beta is not None and not isinstance(beta, str):
        with pytest.raises(ValueError, match=pattern):
            klr.data_ambiguation([0, 1, 2, 3], np.zeros((4, C)), beta=beta, from_logits=True)


@pytest.mark.parametrize("beta", [0.0, 1.5, -0.1, float("nan")])
def test_beta_tensor_outside_the_interval_is_nan_or_raises(beta):
    logits = np.linspace(-2.0, 2.0, 4 * C).reshape(4, C)
    labels = [0, 1, 2, 3]
    beta = ops.convert_to_tensor(beta)
    value = to_numpy(klr.data_ambiguation(labels, logits, beta=beta, from_logits=True))
    assert np.isnan(value).all()
    with pytest.raises(ValueError, match=r"`beta`.*Received: beta="):
        klr.data_ambiguation(labels, logits, beta=beta, from_logits=True, validate_args=True)


@pytest.mark.parametrize("warmup", [-1, 1.5, True, "2", None])
def test_bad_warmup_epochs_raise_naming_it(warmup):
    pattern = r"argument `warmup_epochs`.*Received: warmup_epochs="
    with pytest.raises(ValueError, match=pattern):
        klr.DataAmbiguation(beta=0.6, warmup_epochs=warmup)
    with pytest.raises(ValueError, match=pattern):
        klr.DataAmbiguation(beta=klr.CosineAlpha(0.75, 0.6, epochs=3), warmup_epochs=warmup)
    with pytest.raises(ValueError, match=pattern):
        klr.AmbiguationThreshold(0.6, warmup)


def test_candidate_sets_rejects_a_wrong_candidates_shape():
    labels = np.array([0, 1])
    for shape in [(2, 4), (3, 3), (2,), (2, 3, 1)]:
        with pytest.raises(ValueError, match=r"`candidates`.*candidates.shape="):
            klr.candidate_sets(labels, 3, np.ones(shape))
    with pytest.raises(ValueError, match="`num_classes`"):
        klr.candidate_sets(labels, 1)


@pytest.mark.parametrize("label", [-1, C, 1.5])
def test_data_ambiguation_labels_out_of_range(label):
    logits = np.zeros((4, C))
    labels = np.array([0, label, 2, 3])
    value = to_numpy(klr.data_ambiguation(labels, logits, from_logits=True))
    assert np.isfinite(value[[0, 2, 3]]).all() and np.isnan(value[1])
    with pytest.raises(ValueError, match=rf"class ids must be integers in \[0, {C}\)"):
        klr.data_ambiguation(labels, logits, from_logits=True, validate_args=True)


def test_beta_state_not_compiled_in_is_refused(data):
    x, y, _ = data
    loss = klr.DataAmbiguation(beta=0.6, warmup_epochs=1, from_logits=True)
    model = _model(loss)  # without metrics=loss.schedule_states
    with pytest.raises(ValueError, match=r"schedule_states.*\['beta'\]"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[klr.AlphaScheduler()])
