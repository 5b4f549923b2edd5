"""LabelRelaxation / SparseLabelRelaxation against the explicit float64 projection (eq. 6)."""

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from tests import oracle
from tests.conftest import finite_difference_grad, to_numpy, value_and_grad

PAPER_ALPHAS = [0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4]


def _logits(rng, batch, k, scale=3.0):
    return (scale * rng.standard_normal((batch, k))).astype(np.float64)


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("alpha", PAPER_ALPHAS)
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_matches_explicit_projection(rng, k, alpha, from_logits):
    # Even rows get a confident correct prediction (inside the set for most alphas).
    labels = rng.integers(0, k, 64)
    logits = rng.uniform(-2.0, 2.0, (64, k))
    logits[np.arange(0, 64, 2), labels[::2]] += 8.0
    probs = oracle.softmax(logits)
    # From probabilities, values below keras.backend.epsilon() would be clipped.
    assert probs.min() > 1e-6
    expected = oracle.label_relaxation(labels, probs, alpha)
    y_pred = logits if from_logits else probs
    one_hot = np.eye(k)[labels]
    sparse = to_numpy(klr.sparse_label_relaxation(labels, y_pred, alpha, from_logits))
    dense = to_numpy(klr.label_relaxation(one_hot, y_pred, alpha, from_logits))
    assert sparse.dtype == np.float64
    np.testing.assert_allclose(sparse, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dense, expected, rtol=1e-10, atol=1e-12)
    # float32 inputs compute in float32.
    sparse32 = to_numpy(
        klr.sparse_label_relaxation(labels, y_pred.astype("float32"), alpha, from_logits)
    )
    assert sparse32.dtype == np.float32
    np.testing.assert_allclose(sparse32, expected, rtol=1e-4, atol=1e-5)


def test_some_samples_inside_and_some_outside(rng):
    # Guards the parametrised test against a data set that is all inside or all outside.
    logits = _logits(rng, 64, 10)
    labels = np.where(np.arange(64) % 2 == 0, logits.argmax(-1), rng.integers(0, 10, 64))
    values = to_numpy(klr.sparse_label_relaxation(labels, logits, 0.1, from_logits=True))
    assert (values == 0).sum() > 10 and (values > 0).sum() > 10


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "one_hot"])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_gradient_matches_finite_differences(rng, sparse, from_logits):
    k, alpha = 5, 0.2
    logits = _logits(rng, 8, k, scale=2.0)
    labels = rng.integers(0, k, 8)
    target = labels if sparse else np.eye(k)[labels]
    fn = klr.sparse_label_relaxation if sparse else klr.label_relaxation
    x = logits if from_logits else oracle.softmax(logits)

    def loss(t):
        return fn(target, t, alpha, from_logits)

    _, grad = value_and_grad(loss, x)
    np.testing.assert_allclose(grad, finite_difference_grad(loss, x), rtol=1e-5, atol=1e-7)


def test_logit_gradient_is_analytic(rng):
    # d L / d z = sum_k (p_hat_k - p_r_k) e_k: softmax minus the projected target.
    k, alpha = 10, 0.1
    logits = _logits(rng, 32, k)
    labels = rng.integers(0, k, 32)
    _, grad = value_and_grad(lambda t: klr.sparse_label_relaxation(labels, t, alpha, True), logits)
    probs = oracle.softmax(logits)
    projected = np.stack([oracle.project_one_hot(p, y, alpha) for p, y in zip(probs, labels)])
    np.testing.assert_allclose(grad, probs - projected, atol=1e-10)


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "one_hot"])
def test_zero_loss_and_zero_gradient_inside_the_set(sparse):
    alpha = 0.1
    # p_hat(y) = 0.95 >= 0.9 for every row.
    probs = np.array([[0.95, 0.03, 0.02], [0.01, 0.95, 0.04], [0.0, 0.05, 0.95]])
    labels = np.array([0, 1, 2])
    target = labels if sparse else np.eye(3)[labels]
    fn = klr.sparse_label_relaxation if sparse else klr.label_relaxation
    for x, from_logits in ((probs, False), (np.log(np.maximum(probs, 1e-30)), True)):
        value, grad = value_and_grad(lambda t, f=from_logits: fn(target, t, alpha, f), x)
        assert value == 0.0
        assert np.all(grad == 0.0)


def test_just_inside_is_zero_and_just_outside_is_positive():
    alpha = 0.25
    inside = np.array([[0.75 + 1e-12, 0.25 - 1e-12]])
    outside = np.array([[0.75 - 1e-4, 0.25 + 1e-4]])
    assert float(klr.sparse_label_relaxation([0], inside, alpha)[0]) == 0.0
    expected = oracle.label_relaxation([0], outside, alpha)
    np.testing.assert_allclose(
        to_numpy(klr.sparse_label_relaxation([0], outside, alpha)), expected, rtol=1e-6
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_never_negative_near_the_boundary(dtype):
    # The two terms of the closed form cancel near p(y) = 1 - alpha.
    p_y = 0.9 + np.linspace(-1e-3, 1e-3, 2001)
    probs = np.stack([p_y, 1.0 - p_y], axis=-1).astype(dtype)
    values = to_numpy(klr.sparse_label_relaxation(np.zeros(2001, "int64"), probs, 0.1))
    assert values.min() >= 0.0
    np.testing.assert_allclose(
        values, oracle.label_relaxation(np.zeros(2001, "int64"), probs, 0.1), atol=1e-6
    )


def test_small_alpha_tends_to_cross_entropy(rng):
    logits = _logits(rng, 32, 10, scale=1.0)
    labels = rng.integers(0, 10, 32)
    ce = oracle.cross_entropy(labels, oracle.softmax(logits))
    gaps = []
    for alpha in [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]:
        lr = to_numpy(klr.sparse_label_relaxation(labels, logits, alpha, from_logits=True))
        gaps.append(np.max(np.abs(lr - ce)))
    assert all(b < a for a, b in zip(gaps, gaps[1:]))
    assert gaps[-1] < 1e-4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_logits_give_finite_loss_and_gradient(rng, dtype):
    k = 10
    logits = (1e4 * np.sign(rng.standard_normal((16, k)))).astype(dtype)
    labels = rng.integers(0, k, 16)
    for fn, target in (
        (klr.sparse_label_relaxation, labels),
        (klr.label_relaxation, np.eye(k)[labels]),
    ):
        value, grad = value_and_grad(lambda t, f=fn, y=target: f(y, t, 0.1, True), logits)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
    # A wrong class with the maximal margin: the loss is the closed form in log space.
    loss = klr.sparse_label_relaxation([1], np.array([[1e4, -1e4]], dtype), 0.1, True)
    expected = 0.9 * (np.log(0.9) + 2e4) + 0.1 * np.log(0.1)
    np.testing.assert_allclose(to_numpy(loss), [expected], rtol=1e-6)


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_precision_inputs_compute_in_float32(rng, half):
    logits = _logits(rng, 64, 10, scale=2.0).astype("float32")
    labels = rng.integers(0, 10, 64)
    reference = to_numpy(klr.sparse_label_relaxation(labels, logits, 0.1, True))
    for fn, target in (
        (klr.sparse_label_relaxation, labels),
        (klr.label_relaxation, np.eye(10)[labels]),
    ):
        half_logits = keras.ops.cast(logits, half)
        value = to_numpy(fn(target, half_logits, 0.1, True))
        assert value.dtype == np.float32
        assert np.all(np.isfinite(value))
        np.testing.assert_allclose(value, reference, rtol=2e-2, atol=2e-2)


def test_one_hot_equals_sparse(rng):
    logits = _logits(rng, 128, 20).astype("float32")
    labels = rng.integers(0, 20, 128)
    for from_logits in (True, False):
        x = logits if from_logits else oracle.softmax(logits).astype("float32")
        sparse = to_numpy(klr.sparse_label_relaxation(labels, x, 0.05, from_logits))
        dense = to_numpy(klr.label_relaxation(np.eye(20)[labels], x, 0.05, from_logits))
        np.testing.assert_allclose(dense, sparse, rtol=1e-6, atol=1e-7)


def test_per_sample_alpha_equals_loop_over_alphas(rng):
    logits = _logits(rng, 70, 10)
    labels = rng.integers(0, 10, 70)
    alphas = np.array(PAPER_ALPHAS * 10)
    for fn, target in (
        (klr.sparse_label_relaxation, labels),
        (klr.label_relaxation, np.eye(10)[labels]),
    ):
        batched = to_numpy(fn(target, logits, keras.ops.convert_to_tensor(alphas), True))
        looped = [
            to_numpy(fn(target[i : i + 1], logits[i : i + 1], a, True))[0]
            for i, a in enumerate(alphas)
        ]
        np.testing.assert_allclose(batched, looped, rtol=1e-12)


def test_per_sample_alpha_broadcasts_over_time_axis(rng):
    logits = _logits(rng, 4 * 3 * 5, 1).reshape(4, 3, 5)
    labels = rng.integers(0, 5, (4, 3))
    alphas = np.array([[0.05], [0.1], [0.2], [0.3]])
    value = to_numpy(klr.sparse_label_relaxation(labels, logits, alphas, True))
    expected = oracle.label_relaxation(
        labels, oracle.softmax(logits), np.repeat(alphas, 3, axis=1).reshape(-1)
    )
    np.testing.assert_allclose(value.reshape(-1), expected, rtol=1e-10)


def test_sequence_shapes(rng):
    logits = _logits(rng, 2 * 7 * 6, 1).reshape(2, 7, 6)
    labels = rng.integers(0, 6, (2, 7))
    expected = oracle.label_relaxation(labels, oracle.softmax(logits), 0.1).reshape(2, 7)
    sparse = to_numpy(klr.sparse_label_relaxation(labels, logits, 0.1, True))
    dense = to_numpy(klr.label_relaxation(np.eye(6)[labels], logits, 0.1, True))
    trailing = to_numpy(klr.sparse_label_relaxation(labels[..., None], logits, 0.1, True))
    for value in (sparse, dense, trailing):
        assert value.shape == (2, 7)
        np.testing.assert_allclose(value, expected, rtol=1e-10)


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "one_hot"])
def test_nan_in_gives_nan_out(sparse):
    logits = np.array([[np.nan, 0.0, 1.0], [5.0, 0.0, 0.0]])
    labels = np.array([0, 0])
    target = labels if sparse else np.eye(3)[labels]
    fn = klr.sparse_label_relaxation if sparse else klr.label_relaxation
    value = to_numpy(fn(target, logits, 0.1, True))
    assert np.isnan(value[0])
    assert value[1] == 0.0  # the valid row (inside the set) is unaffected


# ---------------------------------------------------------------------------
# The Loss classes: reductions, sample weights, masking, dtypes.
# ---------------------------------------------------------------------------


def _per_sample(rng):
    logits = _logits(rng, 16, 10).astype("float32")
    labels = rng.integers(0, 10, 16)
    per_sample = oracle.label_relaxation(labels, oracle.softmax(logits), 0.1)
    return logits, labels, per_sample


@pytest.mark.parametrize(
    "reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None]
)
@pytest.mark.parametrize("cls", ["LabelRelaxation", "SparseLabelRelaxation"])
def test_reductions_and_sample_weight(rng, reduction, cls):
    logits, labels, per_sample = _per_sample(rng)
    weights = rng.uniform(0, 2, 16)
    loss = getattr(klr, cls)(alpha=0.1, from_logits=True, reduction=reduction)
    target = labels if cls.startswith("Sparse") else np.eye(10)[labels]
    weighted = per_sample * weights
    expected = {
        "sum_over_batch_size": weighted.sum() / 16,
        "mean": weighted.sum() / 16,
        "sum": weighted.sum(),
        "mean_with_sample_weight": weighted.sum() / weights.sum(),
        "none": weighted,
        None: weighted,
    }[reduction]
    value = to_numpy(loss(target, logits, sample_weight=weights))
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    unweighted = to_numpy(loss(target, logits))
    expected_unweighted = per_sample if reduction in ("none", None) else None
    if expected_unweighted is not None:
        np.testing.assert_allclose(unweighted, expected_unweighted, rtol=1e-5, atol=1e-6)


def test_keras_mask_is_respected(rng):
    tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 0]])
    labels = rng.integers(0, 6, (2, 5))
    embed = keras.layers.Embedding(10, 4, mask_zero=True)
    dense = keras.layers.Dense(6)
    logits = dense(embed(tokens))
    per_step = oracle.label_relaxation(labels, oracle.softmax(to_numpy(logits)), 0.1).reshape(2, 5)
    valid = tokens != 0
    value = float(klr.SparseLabelRelaxation(alpha=0.1, from_logits=True)(labels, logits))
    np.testing.assert_allclose(value, per_step[valid].mean(), rtol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_policy_gives_float32(rng, restore_policy, policy):
    keras.config.set_dtype_policy(policy)
    logits, labels, per_sample = _per_sample(rng)
    half = keras.ops.cast(logits, keras.config.dtype_policy().compute_dtype)
    for loss, target in (
        (klr.SparseLabelRelaxation(0.1, from_logits=True), labels),
        (klr.LabelRelaxation(0.1, from_logits=True), np.eye(10)[labels]),
        (klr.SparseLabelRelaxation(0.1, from_logits=True, dtype=policy), labels),
        (klr.SparseLabelRelaxation(0.1, from_logits=True, dtype="float16"), labels),
    ):
        value = to_numpy(loss(target, half))
        assert value.dtype == np.float32 and np.isfinite(value)
        np.testing.assert_allclose(value, per_sample.mean(), rtol=2e-2, atol=2e-2)


def test_float64_dtype_argument(rng):
    logits, labels, per_sample = _per_sample(rng)
    loss = klr.SparseLabelRelaxation(0.1, from_logits=True, dtype="float64", reduction="none")
    value = to_numpy(loss(labels, logits.astype("float64")))
    assert value.dtype == np.float64


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, float("nan"), "0.1", True, None])
@pytest.mark.parametrize(
    "cls", ["LabelRelaxation", "SparseLabelRelaxation", "BinaryLabelRelaxation"]
)
def test_alpha_out_of_range_raises_naming_alpha(cls, alpha):
    with pytest.raises(ValueError, match=r"argument `alpha`.*Received: alpha="):
        getattr(klr, cls)(alpha=alpha)


def test_functional_alpha_checks():
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match="`alpha`"):
        klr.sparse_label_relaxation([0, 1, 2], logits, alpha=1.2, from_logits=True)
    with pytest.raises(ValueError, match=r"`alpha`.*\[-0\.1\]"):
        klr.sparse_label_relaxation(
            [0, 1, 2],
            logits,
            alpha=np.array([0.1, -0.1, 0.2]),
            from_logits=True,
            validate_args=True,
        )
    with pytest.raises(ValueError, match=r"`alpha`.*\[1\.0\]"):
        klr.label_relaxation(
            np.eye(4)[:3],
            logits,
            alpha=np.array([0.1, 1.0, 0.2]),
            from_logits=True,
            validate_args=True,
        )


@pytest.mark.parametrize("bad_alpha", [0.0, 1.0, -0.1, 1.5, np.nan])
@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "one_hot"])
def test_per_sample_alpha_outside_the_interval_gives_nan(bad_alpha, sparse):
    # alpha = 1 would otherwise give a finite (zero) loss: the set is the whole simplex.
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.1, 3.0], [1.0, 1.0, 1.0]])
    labels = np.array([1, 0, 2])
    alpha = np.array([0.1, bad_alpha, 0.2])
    fn, y = (
        (klr.sparse_label_relaxation, labels)
        if sparse
        else (klr.label_relaxation, np.eye(3)[labels])
    )
    value = to_numpy(fn(y, logits, alpha=alpha, from_logits=True))
    assert np.isnan(value[1])
    expected = oracle.label_relaxation(labels, oracle.softmax(logits), np.nan_to_num(alpha))
    np.testing.assert_allclose(value[[0, 2]], expected[[0, 2]], rtol=1e-9)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"y_true.shape=\(3, 5\), y_pred.shape=\(3, 4\)"):
        klr.label_relaxation(np.eye(5)[:3], np.zeros((3, 4)), 0.1, True)
    with pytest.raises(ValueError, match=r"y_true.shape=\(4,\), y_pred.shape=\(3, 4\)"):
        klr.sparse_label_relaxation([0, 1, 2, 3], np.zeros((3, 4)), 0.1, True)


@pytest.mark.parametrize(
    "row",
    [[0.5, 0.6, 0.0], [1.2, -0.2, 0.0], [0.5, 0.4, 0.0]],
    ids=["sum_above", "negative", "sum_below"],
)
def test_target_row_not_a_distribution_raises(row):
    with pytest.raises(ValueError, match="probability distribution"):
        klr.label_relaxation(
            np.array([[1.0, 0.0, 0.0], row]), np.zeros((2, 3)), 0.1, True, validate_args=True
        )
    # Without validate_args (the default, and always inside compiled steps): NaN.
    value = to_numpy(
        klr.label_relaxation(np.array([[1.0, 0.0, 0.0], row]), np.zeros((2, 3)), 0.1, True)
    )
    assert np.isfinite(value[0]) and np.isnan(value[1])


def test_target_row_within_tolerance_is_accepted():
    value = klr.label_relaxation(np.array([[0.5, 0.5005, 0.0]]), np.zeros((1, 3)), 0.1, True)
    assert np.isfinite(to_numpy(value)).all()


@pytest.mark.parametrize("label", [-1, 3, 1.5])
def test_labels_out_of_range_raise(label):
    with pytest.raises(ValueError, match=r"class ids must be integers in \[0, 3\)"):
        klr.sparse_label_relaxation(
            np.array([0, label]), np.zeros((2, 3)), 0.1, True, validate_args=True
        )
    value = to_numpy(klr.sparse_label_relaxation(np.array([0, label]), np.zeros((2, 3)), 0.1, True))
    assert np.isfinite(value[0]) and np.isnan(value[1])
