"""Generalized (Zhang & Sabuncu, 2018) and symmetric (Wang et al., 2019) cross-entropy against
float64 NumPy references written from the papers' formulas."""

import math

import keras
import numpy as np
import pytest

from keras_label_relaxation.losses import robust
from tests import oracle
from tests.conftest import finite_difference_grad, to_numpy, value_and_grad

K = 5
EPS = 1e-7  # keras.backend.epsilon(): Keras' clip of probabilities for log p


# ---------------------------------------------------------------------------
# The references: explicit loops over samples and classes.
# ---------------------------------------------------------------------------


def _probabilities(y_pred, from_logits):
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if from_logits:
        return oracle.softmax(y_pred)
    return y_pred / y_pred.sum(axis=-1, keepdims=True)


def _for_log(p, from_logits):
    # Keras' cross-entropy convention: probabilities are clipped to [eps, 1 - eps] for log p.
    return p if from_logits else np.clip(p, EPS, 1.0 - EPS)


def gce_reference(targets, y_pred, q, from_logits):
    """Zhang & Sabuncu's L_q = (1 - p_y^q) / q, for soft targets sum_k y_k (1 - p_k^q) / q."""
    p = _for_log(_probabilities(y_pred, from_logits), from_logits)
    targets = np.asarray(targets, dtype=np.float64)
    out = []
    for y_row, p_row in zip(targets.reshape(-1, K), p.reshape(-1, K)):
        out.append(sum(y_k * (1.0 - p_k**q) / q for y_k, p_k in zip(y_row, p_row)))
    return np.array(out).reshape(targets.shape[:-1])


def sce_reference(targets, y_pred, alpha, beta, log_floor, from_logits):
    """Wang et al.'s alpha CE + beta RCE, RCE = -sum_k p_k log y_k with log 0 = A (soft
    targets: log max(y_k, exp(A)))."""
    p = _probabilities(y_pred, from_logits)
    p_log = _for_log(p, from_logits)
    targets = np.asarray(targets, dtype=np.float64)
    out = []
    for y_row, p_row, pl_row in zip(targets.reshape(-1, K), p.reshape(-1, K), p_log.reshape(-1, K)):
        ce = -sum(y_k * math.log(p_k) for y_k, p_k in zip(y_row, pl_row))
        rce = -sum(p_k * math.log(max(y_k, math.exp(log_floor))) for y_k, p_k in zip(y_row, p_row))
        out.append(alpha * ce + beta * rce)
    return np.array(out).reshape(targets.shape[:-1])


def _soft_targets(rng, n):
    # Dirichlet rows with exact zeros, entries below exp(-4) = 0.018 and above it.
    rows = rng.dirichlet(np.full(K, 0.4), n)
    rows[rows < 0.004] = 0.0
    return rows / rows.sum(axis=-1, keepdims=True)


@pytest.fixture
def case(rng):
    logits = 2.0 * rng.standard_normal((24, K))
    labels = rng.integers(0, K, 24)
    probs = oracle.softmax(logits)
    # Probability rows with exact zeros and ones: the clip of log p matters there.
    probs[0] = np.eye(K)[labels[0]]
    probs[1] = np.eye(K)[(labels[1] + 1) % K]
    return logits, labels, probs, _soft_targets(rng, 24)


def _inputs(case, targets, from_logits):
    logits, labels, probs, soft = case
    y = {"sparse": labels, "one_hot": np.eye(K)[labels], "soft": soft}[targets]
    return y, (logits if from_logits else probs)


TARGETS = ["sparse", "one_hot", "soft"]


def _assert_matches_reference(value, expected, from_logits):
    if not from_logits:
        # Rows 0 and 1 hold probabilities of exactly 0 and 1, clipped for log p: Keras' torch
        # backend rounds the clip bounds to float32 (1 - 1e-7 becomes 1 - 1.19e-7), also in
        # float64, which moves log p of those entries by up to 2e-8.
        np.testing.assert_allclose(value[:2], expected[:2], rtol=1e-9, atol=3e-8)
        value, expected = value[2:], expected[2:]
    # atol 1e-14: the reference's 1 - p^q cancels for p = 1 - eps (-expm1(q log p) does not).
    np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-14)


# ---------------------------------------------------------------------------
# Values against the references.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probabilities"])
@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize("q", [0.05, 0.7, 1.0])
def test_generalized_cross_entropy_values(case, q, targets, from_logits):
    y, y_pred = _inputs(case, targets, from_logits)
    dense = y if targets != "sparse" else np.eye(K)[y]
    fn = robust.sparse_generalized_cross_entropy if targets == "sparse" else None
    fn = fn or robust.generalized_cross_entropy
    value = to_numpy(fn(y, y_pred, q, from_logits=from_logits))
    assert value.dtype == np.float64 and value.shape == (24,)
    _assert_matches_reference(value, gce_reference(dense, y_pred, q, from_logits), from_logits)


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probabilities"])
@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize(
    ("alpha", "beta", "log_floor"),
    [(0.1, 1.0, -4.0), (0.0, 2.0, math.log(1e-4)), (1.0, 0.0, -4.0)],
    ids=["cifar10", "rce_only_code_floor", "ce_only"],
)
def test_symmetric_cross_entropy_values(case, alpha, beta, log_floor, targets, from_logits):
    y, y_pred = _inputs(case, targets, from_logits)
    dense = y if targets != "sparse" else np.eye(K)[y]
    fn = robust.sparse_symmetric_cross_entropy if targets == "sparse" else None
    fn = fn or robust.symmetric_cross_entropy
    value = to_numpy(fn(y, y_pred, alpha, beta, log_floor, from_logits=from_logits))
    assert value.dtype == np.float64 and value.shape == (24,)
    expected = sce_reference(dense, y_pred, alpha, beta, log_floor, from_logits)
    _assert_matches_reference(value, expected, from_logits)


def test_defaults_are_the_papers_settings():
    assert robust.GeneralizedCrossEntropy().get_config()["q"] == 0.7
    config = robust.SparseSymmetricCrossEntropy().get_config()
    assert (config["alpha"], config["beta"], config["log_floor"]) == (0.1, 1.0, -4.0)


def test_one_hot_reverse_cross_entropy_is_minus_a_times_one_minus_p(case):
    logits, labels, _, _ = case
    p_y = oracle.softmax(logits)[np.arange(24), labels]
    for log_floor in (-4.0, -9.0):
        rce = to_numpy(
            robust.sparse_symmetric_cross_entropy(labels, logits, 0.0, 1.0, log_floor, True)
        )
        np.testing.assert_allclose(rce, -log_floor * (1.0 - p_y), rtol=1e-12)
        dense = robust.symmetric_cross_entropy(np.eye(K)[labels], logits, 0.0, 1.0, log_floor, True)
        np.testing.assert_allclose(to_numpy(dense), rce, rtol=1e-12)


def test_sparse_one_minus_p_keeps_its_relative_accuracy_near_p_one():
    # p(y) = 1 - 4e-20: 1 - p(y) from sum_{k != y} p_k, not from 1 - p(y) (which is 0).
    logits = np.array([[0.0, -45.0, -45.0, -46.0, -200.0]])
    rest = np.exp([-45.0, -45.0, -46.0, -200.0]).sum()
    value = to_numpy(robust.sparse_symmetric_cross_entropy([0], logits, 0.0, 1.0, -4.0, True))
    np.testing.assert_allclose(value, [4.0 * rest], rtol=1e-12)


def test_generalized_cross_entropy_at_q_one_is_half_the_mean_absolute_error(case):
    logits, labels, _, _ = case
    probs = oracle.softmax(logits)
    mae = np.abs(np.eye(K)[labels] - probs).sum(axis=-1)
    value = to_numpy(robust.sparse_generalized_cross_entropy(labels, logits, 1.0, True))
    np.testing.assert_allclose(value, 1.0 - probs[np.arange(24), labels], rtol=1e-12)
    np.testing.assert_allclose(value, mae / 2.0, rtol=1e-12)


def test_generalized_cross_entropy_approaches_cross_entropy_as_q_goes_to_zero(case):
    logits, labels, _, _ = case
    ce = -np.log(oracle.softmax(logits)[np.arange(24), labels])
    for q in (1e-3, 1e-6):
        value = to_numpy(robust.sparse_generalized_cross_entropy(labels, logits, q, True))
        # (1 - p^q) / q = -log p - q (log p)^2 / 2 + O(q^2)
        np.testing.assert_allclose(value, ce - q * ce**2 / 2, rtol=q**2 * 100 + 1e-12)


def test_sequence_shapes_and_a_trailing_label_axis(rng):
    logits = rng.standard_normal((3, 4, K))
    labels = rng.integers(0, K, (3, 4))
    one_hot = np.eye(K)[labels]
    for sparse_fn, dense_fn, expected in (
        (
            robust.sparse_generalized_cross_entropy,
            robust.generalized_cross_entropy,
            gce_reference(one_hot, logits, 0.7, True),
        ),
        (
            robust.sparse_symmetric_cross_entropy,
            robust.symmetric_cross_entropy,
            sce_reference(one_hot, logits, 0.1, 1.0, -4.0, True),
        ),
    ):
        for value in (
            to_numpy(sparse_fn(labels, logits, from_logits=True)),
            to_numpy(sparse_fn(labels[..., None], logits, from_logits=True)),
            to_numpy(dense_fn(one_hot, logits, from_logits=True)),
        ):
            assert value.shape == (3, 4)
            np.testing.assert_allclose(value, expected, rtol=1e-10)


# ---------------------------------------------------------------------------
# Gradients.
# ---------------------------------------------------------------------------

FUNCTIONS = [
    (robust.generalized_cross_entropy, False, {"q": 0.1}),
    (robust.sparse_generalized_cross_entropy, True, {"q": 0.7}),
    (robust.symmetric_cross_entropy, False, {}),
    (robust.sparse_symmetric_cross_entropy, True, {"alpha": 0.5, "beta": 2.0, "log_floor": -6.0}),
]


@pytest.mark.parametrize(
    ("fn", "sparse", "kwargs"), FUNCTIONS, ids=lambda v: getattr(v, "__name__", None)
)
def test_gradient_matches_finite_differences(rng, fn, sparse, kwargs):
    logits = rng.standard_normal((4, K))
    labels = rng.integers(0, K, 4)
    y = labels if sparse else np.concatenate([np.eye(K)[labels[:2]], _soft_targets(rng, 2)])

    def loss(t):
        return fn(y, t, from_logits=True, **kwargs)

    _, grad = value_and_grad(loss, logits)
    assert grad.dtype == np.float64
    np.testing.assert_allclose(grad, finite_difference_grad(loss, logits), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("fn", "sparse", "kwargs"), FUNCTIONS, ids=lambda v: getattr(v, "__name__", None)
)
def test_extreme_logits_are_finite_and_nan_stays_in_its_row(rng, fn, sparse, kwargs):
    logits = 1e4 * np.sign(rng.standard_normal((4, K)))
    labels = rng.integers(0, K, 4)
    y = labels if sparse else np.eye(K)[labels]
    value, grad = value_and_grad(lambda t: fn(y, t, from_logits=True, **kwargs), logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    logits = rng.standard_normal((2, K))
    logits[0, 1] = np.nan
    out = to_numpy(fn(y[:2], logits, from_logits=True, **kwargs))
    assert np.isnan(out[0]) and np.isfinite(out[1])


# ---------------------------------------------------------------------------
# The Loss classes compiled in fit / evaluate, with weights and masks.
# ---------------------------------------------------------------------------


def _reference(cls, targets, y_pred, from_logits):
    config = cls().get_config()
    dense = targets if not cls.__name__.startswith("Sparse") else np.eye(K)[targets]
    if "q" in config:
        return gce_reference(dense, y_pred, config["q"], from_logits)
    args = config["alpha"], config["beta"], config["log_floor"]
    return sce_reference(dense, y_pred, *args, from_logits)


CLASSES = [
    robust.GeneralizedCrossEntropy,
    robust.SparseGeneralizedCrossEntropy,
    robust.SymmetricCrossEntropy,
    robust.SparseSymmetricCrossEntropy,
]


def _targets(rng, cls, shape):
    labels = rng.integers(0, K, shape)
    return labels if cls.__name__.startswith("Sparse") else np.eye(K, dtype="float32")[labels]


@pytest.mark.parametrize(
    ("cls", "from_logits"),
    [
        (robust.GeneralizedCrossEntropy, True),
        (robust.SparseGeneralizedCrossEntropy, False),
        (robust.SymmetricCrossEntropy, False),
        (robust.SparseSymmetricCrossEntropy, True),
    ],
    ids=lambda v: getattr(v, "__name__", "logits" if v else "probabilities"),
)
def test_compiled_fit_and_evaluate_with_sample_weight(rng, cls, from_logits):
    n = 12
    x = rng.standard_normal((n, 3)).astype("float32")
    y = _targets(rng, cls, n)
    weights = rng.uniform(0.0, 2.0, n).astype("float32")
    keras.utils.set_random_seed(0)
    activation = None if from_logits else "softmax"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(K, activation=activation)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=cls(from_logits=from_logits))
    before = model.get_weights()
    history = model.fit(x, y, sample_weight=weights, batch_size=6, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    per_sample = _reference(cls, y, to_numpy(model(x)).astype(np.float64), from_logits)
    expected = np.sum(weights * per_sample) / n  # "sum_over_batch_size"
    for w in (weights, weights[:, None]):
        # A fresh compiled step per weight shape: TensorFlow's retrace relaxes its rank away.
        model.compile(optimizer="sgd", loss=cls(from_logits=from_logits))
        value = model.evaluate(x, y, sample_weight=w, batch_size=6, verbose=0)
        np.testing.assert_allclose(value, expected, rtol=1e-5)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_masked_timesteps_are_excluded_from_the_loss(rng, cls):
    n, steps = 6, 5
    x = rng.standard_normal((n, steps, 2)).astype("float32")
    for i, length in enumerate([5, 2, 3, 5, 1, 4]):
        x[i, length:] = 0.0  # padding, masked by Masking(mask_value=0)
    keep = np.any(x != 0.0, axis=-1)
    y = _targets(rng, cls, (n, steps))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((steps, 2))
    outputs = keras.layers.Dense(K)(keras.layers.Masking(mask_value=0.0)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=cls(from_logits=True))
    value = model.evaluate(x, y, batch_size=n, verbose=0)
    per_step = _reference(cls, y, to_numpy(model(x)).astype(np.float64), True)
    assert abs(per_step[keep].mean() - per_step.mean()) > 1e-3  # the test tells them apart
    np.testing.assert_allclose(value, per_step[keep].mean(), rtol=1e-5)


# ---------------------------------------------------------------------------
# Serialization.
# ---------------------------------------------------------------------------

CONFIGURED = [
    robust.GeneralizedCrossEntropy(q=0.4, from_logits=True),
    robust.SparseGeneralizedCrossEntropy(q=1.0, from_logits=True, reduction="sum"),
    robust.SymmetricCrossEntropy(alpha=0.5, beta=2.0, log_floor=-6.0, from_logits=True),
    robust.SparseSymmetricCrossEntropy(alpha=0.0, beta=1.0, from_logits=True),
]


@pytest.mark.parametrize("loss", CONFIGURED, ids=lambda loss: type(loss).__name__)
def test_config_round_trip(rng, loss):
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    clone = type(loss).from_config(loss.get_config())
    logits = rng.standard_normal((8, K)).astype("float32")
    y = _targets(rng, type(loss), 8)
    assert float(clone(y, logits)) == float(loss(y, logits))


@pytest.mark.parametrize("loss", CONFIGURED, ids=lambda loss: type(loss).__name__)
def test_keras_file_round_trip_with_safe_mode(rng, tmp_path, loss):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(K)])
    model.compile(optimizer="sgd", loss=loss)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    x = rng.standard_normal((8, 3)).astype("float32")
    y = _targets(rng, type(loss), 8)
    np.testing.assert_allclose(
        loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6
    )


# ---------------------------------------------------------------------------
# Bad input: parameters raise, targets and prediction rows give NaN for their sample.
# ---------------------------------------------------------------------------

BAD_PARAMETERS = [
    ({"q": 0.0}, r"argument `q`.*\(0, 1\].*Received: q=0\.0"),
    ({"q": 1.5}, r"argument `q`.*Received: q=1\.5"),
    ({"q": -0.1}, r"argument `q`.*Received: q=-0\.1"),
    ({"q": float("nan")}, r"argument `q`.*Received: q=nan"),
    ({"q": "0.7"}, r"argument `q`.*Received: q='0\.7'"),
    ({"q": True}, r"argument `q`.*Received: q=True"),
]
BAD_SYMMETRIC = [
    ({"alpha": -0.1}, r"argument `alpha`.*Received: alpha=-0\.1"),
    ({"beta": float("inf")}, r"argument `beta`.*Received: beta=inf"),
    ({"alpha": 0.0, "beta": 0.0}, r"arguments `alpha` and `beta`.*alpha=0\.0, beta=0\.0"),
    ({"log_floor": 0.0}, r"argument `log_floor`.*< 0.*Received: log_floor=0\.0"),
    ({"log_floor": 2.0}, r"argument `log_floor`.*Received: log_floor=2\.0"),
    ({"log_floor": float("-inf")}, r"argument `log_floor`.*Received: log_floor=-inf"),
    ({"log_floor": None}, r"argument `log_floor`.*Received: log_floor=None"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_PARAMETERS, ids=lambda v: str(v))
@pytest.mark.parametrize(
    "make",
    [
        robust.GeneralizedCrossEntropy,
        robust.SparseGeneralizedCrossEntropy,
        lambda **kw: robust.generalized_cross_entropy(np.eye(K)[:1], np.zeros((1, K)), **kw),
        lambda **kw: robust.sparse_generalized_cross_entropy([0], np.zeros((1, K)), **kw),
    ],
    ids=["class", "sparse_class", "function", "sparse_function"],
)
def test_bad_q_raises_naming_q(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), BAD_SYMMETRIC, ids=lambda v: str(v))
@pytest.mark.parametrize(
    "make",
    [
        robust.SymmetricCrossEntropy,
        robust.SparseSymmetricCrossEntropy,
        lambda **kw: robust.symmetric_cross_entropy(np.eye(K)[:1], np.zeros((1, K)), **kw),
        lambda **kw: robust.sparse_symmetric_cross_entropy([0], np.zeros((1, K)), **kw),
    ],
    ids=["class", "sparse_class", "function", "sparse_function"],
)
def test_bad_symmetric_parameters_raise_naming_them(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


SPARSE = [robust.sparse_generalized_cross_entropy, robust.sparse_symmetric_cross_entropy]
DENSE = [robust.generalized_cross_entropy, robust.symmetric_cross_entropy]


@pytest.mark.parametrize("label", [K, -1, 1.5, np.nan])
@pytest.mark.parametrize("fn", SPARSE, ids=lambda f: f.__name__)
def test_bad_class_ids_give_nan_only_for_their_sample(rng, fn, label):
    logits = rng.standard_normal((3, K))
    value = to_numpy(fn(np.array([0.0, label, 2.0]), logits, from_logits=True))
    good = to_numpy(fn(np.array([0, 2]), logits[[0, 2]], from_logits=True))
    assert np.isnan(value[1])
    np.testing.assert_allclose(value[[0, 2]], good, rtol=1e-12)
    with pytest.raises(ValueError, match=r"class ids must be integers in \[0, 5\)"):
        fn(np.array([0.0, label, 2.0]), logits, from_logits=True, validate_args=True)


@pytest.mark.parametrize(
    "row",
    [[0.5, 0.2, 0.1, 0.0, 0.0], [1.2, -0.2, 0.0, 0.0, 0.0], [np.nan, 1.0, 0.0, 0.0, 0.0]],
    ids=["sum_below_one", "negative", "nan"],
)
@pytest.mark.parametrize("fn", DENSE, ids=lambda f: f.__name__)
def test_bad_target_rows_give_nan_only_for_their_sample(rng, fn, row):
    logits = rng.standard_normal((3, K))
    targets = np.eye(K)[[0, 1, 2]]
    targets[1] = row
    value = to_numpy(fn(targets, logits, from_logits=True))
    good = to_numpy(fn(targets[[0, 2]], logits[[0, 2]], from_logits=True))
    assert np.isnan(value[1])
    np.testing.assert_allclose(value[[0, 2]], good, rtol=1e-12)
    with pytest.raises(ValueError, match="probability distribution"):
        fn(targets, logits, from_logits=True, validate_args=True)


@pytest.mark.parametrize("fn", SPARSE + DENSE, ids=lambda f: f.__name__)
def test_logits_passed_as_probabilities_give_nan_for_their_row(fn):
    rows = np.array([[0.6, 0.2, 0.1, 0.05, 0.05], [2.0, -1.0, 0.5, 0.0, 0.3]], "float32")
    y = np.array([0, 1]) if fn in SPARSE else np.eye(K)[[0, 1]]
    value = to_numpy(fn(y, rows))
    assert np.isfinite(value[0]) and np.isnan(value[1])
    with pytest.raises(ValueError, match="from_logits=True"):
        fn(y, rows, validate_args=True)


def test_an_out_of_range_label_makes_the_compiled_loss_nan(rng):
    x = rng.standard_normal((8, 3)).astype("float32")
    labels = rng.integers(0, K, 8)
    for loss in (
        robust.SparseGeneralizedCrossEntropy(from_logits=True),
        robust.SparseSymmetricCrossEntropy(from_logits=True),
    ):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(K)])
        model.compile(optimizer="sgd", loss=loss)
        assert np.isfinite(model.evaluate(x, labels, verbose=0))
        bad = labels.copy()
        bad[3] = K
        assert np.isnan(model.evaluate(x, bad, verbose=0))


# ---------------------------------------------------------------------------
# Dtypes.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn", SPARSE + DENSE, ids=lambda f: f.__name__)
def test_dtypes(case, fn):
    logits, labels, probs, _ = case
    y = labels if fn in SPARSE else np.eye(K)[labels]
    for y_pred, from_logits in ((logits, True), (probs, False)):
        assert to_numpy(fn(y, y_pred, from_logits=from_logits)).dtype == np.float64
        single = to_numpy(fn(y, y_pred.astype("float32"), from_logits=from_logits))
        assert single.dtype == np.float32
    half = to_numpy(fn(y, keras.ops.cast(logits, "float16"), from_logits=True))
    assert half.dtype == np.float32
    reference = to_numpy(fn(y, logits.astype("float16").astype("float32"), from_logits=True))
    np.testing.assert_allclose(half, reference, rtol=1e-6)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_class_dtype_argument(case, cls):
    logits, labels, _, _ = case
    y = labels if cls.__name__.startswith("Sparse") else np.eye(K)[labels]
    double = to_numpy(cls(from_logits=True, dtype="float64", reduction="none")(y, logits))
    assert double.dtype == np.float64
    np.testing.assert_allclose(double, _reference(cls, y, logits, True), rtol=1e-9)
    for dtype in ("float16", "mixed_bfloat16"):
        value = to_numpy(cls(from_logits=True, dtype=dtype)(y, logits))
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, double.mean(), rtol=1e-5)
