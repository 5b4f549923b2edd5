"""Calibration estimators: exact functions against float64 loops, metrics against their bounds.

The functions (``calibration_error``, ``ks_calibration_error``,
``smooth_calibration_error``) are checked against explicit loops in
``tests/oracle.py`` (debiased l1 through scipy's folded normal); the streaming
metrics against the functions within the error bounds their docstrings state,
eagerly and inside compiled ``evaluate``.
"""

import keras
import numpy as np
import pytest

from keras_label_relaxation import metrics
from tests import oracle

ESTIMATORS = [
    (norm, binning, debiased, mode)
    for norm in ("l1", "l2", "max")
    for binning in ("equal_width", "equal_mass")
    for debiased in (False, True)
    for mode in ("top_label", "classwise")
    if not (debiased and norm == "max")
]


def _data(rng, n=600, k=4, ties=True):
    """Overconfident predictions; with ``ties``, every row appears twice (equal confidences)."""
    logits = 2.0 * rng.standard_normal((n, k))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    sharp = probs**0.6 / np.sum(probs**0.6, -1, keepdims=True)
    labels = np.array([rng.choice(k, p=p) for p in sharp])
    if ties:
        probs, labels = (
            np.concatenate([probs, probs[: n // 3]]),
            np.concatenate([labels, labels[: n // 3]]),
        )
    return labels, probs


@pytest.mark.parametrize("norm,binning,debiased,mode", ESTIMATORS)
def test_function_matches_loops(rng, norm, binning, debiased, mode):
    labels, probs = _data(rng)
    weights = rng.integers(0, 4, len(labels)).astype(float)
    for w in (None, weights):
        expected = oracle.binned_error_loop(labels, probs, 15, norm, binning, debiased, mode, w)
        got = metrics.calibration_error(
            labels,
            probs,
            15,
            norm=norm,
            binning=binning,
            debiased=debiased,
            mode=mode,
            sample_weight=w,
        )
        assert got == pytest.approx(expected, abs=1e-10)


def test_equal_mass_bins_hold_equal_weight(rng):
    # 15 bins of 40 samples each, no ties: the l1 estimator is the mean gap of 15 blocks.
    labels, probs = _data(rng, n=600, ties=False)
    conf = probs.max(-1)
    order = np.argsort(conf)
    correct = (probs.argmax(-1) == labels).astype(float)
    blocks = np.split(order, 15)
    expected = np.mean([abs(correct[b].mean() - conf[b].mean()) for b in blocks])
    got = metrics.calibration_error(labels, probs, 15, binning="equal_mass")
    assert got == pytest.approx(expected, abs=1e-12)


def test_ks_and_smooth_match_loops(rng):
    labels, probs = _data(rng, n=60, ties=True)
    weights = rng.integers(1, 3, len(labels)).astype(float)
    assert metrics.ks_calibration_error(labels, probs) == pytest.approx(
        oracle.ks_loop(labels, probs), abs=1e-12
    )
    assert metrics.ks_calibration_error(labels, probs, sample_weight=weights) == pytest.approx(
        oracle.ks_loop(labels, probs, weights), abs=1e-12
    )
    for sigma in (0.03, 0.2):
        assert metrics.smooth_calibration_error(labels, probs, bandwidth=sigma) == pytest.approx(
            oracle.smooth_ece_loop(labels, probs, sigma), rel=1e-9
        )


def test_confidences_of_exactly_zero_and_one_land_in_the_end_bins():
    # Classwise, p = 0 is in the first bin and p = 1 in the last (torchmetrics #3510/#1646).
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    labels = np.array([0, 2, 1, 2])
    for norm in ("l1", "l2", "max"):
        for mode in ("top_label", "classwise"):
            expected = oracle.binned_error_loop(labels, probs, 10, norm, "equal_width", False, mode)
            assert metrics.calibration_error(
                labels, probs, 10, norm=norm, mode=mode
            ) == pytest.approx(expected, abs=1e-12)
            metric = metrics.CalibrationError(
                10, norm=norm, mode=mode, num_classes=3, resolution=1000
            )
            metric.update_state(labels, probs.astype("float32"))
            assert float(metric.result()) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("mode", ["top_label", "classwise"])
@pytest.mark.parametrize("num_bins", [10, 15])
def test_equal_width_metric_is_exact_when_bins_divide_resolution(rng, norm, mode, num_bins):
    labels, probs = _data(rng)
    metric = metrics.CalibrationError(num_bins, norm=norm, mode=mode, num_classes=4)
    for start in range(0, len(labels), 256):
        metric.update_state(labels[start : start + 256], probs[start : start + 256])
    expected = oracle.binned_error_loop(labels, probs, num_bins, norm, "equal_width", False, mode)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)


def _cells(probs, resolution):
    conf = probs.max(-1)
    return np.minimum((conf * resolution).astype(int), resolution - 1)


def test_equal_mass_metric_within_its_bound(rng):
    labels, probs = _data(rng, n=3000, ties=False)
    resolution = 200  # coarse, so that cells straddle the bin edges
    metric = metrics.CalibrationError(15, binning="equal_mass", resolution=resolution)
    metric.update_state(labels, probs)
    exact = metrics.calibration_error(labels, probs, 15, binning="equal_mass")
    cells = _cells(probs, resolution)
    # The weight of the cells whose samples fall into more than one exact equal-mass bin.
    order = np.argsort(probs.max(-1), kind="stable")
    exact_bin = np.empty(len(order), int)
    exact_bin[order] = np.minimum(np.arange(len(order)) * 15 // len(order), 14)
    straddling = [c for c in np.unique(cells) if len(np.unique(exact_bin[cells == c])) > 1]
    moved = sum(np.sum(cells == c) for c in straddling) / len(labels)
    assert moved > 0
    assert abs(float(metric.result()) - exact) <= 2 * moved + 1e-6


def test_ks_metric_within_its_bound(rng):
    labels, probs = _data(rng, n=2000)
    for resolution in (50, 3000):
        metric = metrics.KSCalibrationError(resolution=resolution)
        metric.update_state(labels, probs)
        exact = metrics.ks_calibration_error(labels, probs)
        largest_cell = np.bincount(_cells(probs, resolution)).max() / len(labels)
        assert exact - largest_cell - 1e-6 <= float(metric.result()) <= exact + 1e-6


@pytest.mark.parametrize("sigma", [0.02, 0.1])
def test_smooth_metric_within_its_bound(rng, sigma):
    labels, probs = _data(rng, n=2000)
    resolution = 100
    metric = metrics.SmoothCalibrationError(bandwidth=sigma, resolution=resolution)
    metric.update_state(labels, probs)
    exact = metrics.smooth_calibration_error(labels, probs, bandwidth=sigma)
    assert abs(float(metric.result()) - exact) <= np.sqrt(2 / np.pi) / (sigma * resolution)


def test_bootstrap_interval_from_the_same_draws(rng):
    labels, probs = _data(rng, n=300, ties=False)
    estimate = metrics.calibration_error(labels, probs, n_bootstrap=40, seed=3)
    draws = np.random.default_rng(3)
    # bootstrap_replicates draws the chunk's counts at once: one (40, 300) multinomial.
    counts = draws.multinomial(300, np.full(300, 1 / 300), size=40)
    replicates = [oracle.ece_loop(labels, probs, 15, c) for c in counts]
    value = oracle.ece_loop(labels, probs, 15)
    half = 1.959963984540054 * np.std(replicates, ddof=1)
    assert estimate.value == pytest.approx(value, abs=1e-12)
    assert (estimate.low, estimate.high) == pytest.approx(
        (max(0.0, value - half), min(1.0, value + half)), abs=1e-12
    )
    assert estimate == metrics.calibration_error(labels, probs, n_bootstrap=40, seed=3)
    ks = metrics.ks_calibration_error(labels, probs, n_bootstrap=20, confidence_level=0.5)
    assert 0.0 <= ks.low <= ks.value <= ks.high <= 1.0


def test_bootstrap_intervals_stay_in_range_and_contain_the_estimate():
    # Before: basic bootstrap intervals, low = -0.056 for 40 calibrated examples.
    rng = np.random.default_rng(0)
    for n in (40, 2000):
        confidence = rng.uniform(0.5, 1.0, n)
        labels = (rng.uniform(size=n) >= confidence).astype(int)
        probs = np.stack([confidence, 1 - confidence], axis=1)
        for estimate in (
            metrics.calibration_error(labels, probs, n_bootstrap=100, seed=1),
            metrics.ks_calibration_error(labels, probs, n_bootstrap=100, seed=1),
            metrics.smooth_calibration_error(labels, probs, n_bootstrap=20, bandwidth=0.1),
        ):
            assert 0.0 <= estimate.low <= estimate.value <= estimate.high <= 1.0


def _logits_model(k):
    inputs = keras.Input((k,))
    return keras.Model(inputs, keras.layers.Dense(k, kernel_initializer="identity")(inputs))


@pytest.mark.parametrize("how", ["evaluate", "fit"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_metrics_in_compiled_evaluate_and_fit(rng, how, jit_compile):
    if jit_compile and keras.backend.backend() == "torch":
        pytest.skip("jit_compile on torch is torch.compile, not XLA")
    labels, probs = _data(rng, n=512, ties=False)
    logits = np.log(probs).astype("float32")
    model = _logits_model(4)
    model.compile(
        # A learning rate of 0: fit's epoch metrics are those of the fixed identity model.
        optimizer=keras.optimizers.SGD(learning_rate=0.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            metrics.CalibrationError(norm="l2", from_logits=True, name="rms"),
            metrics.CalibrationError(
                mode="classwise", num_classes=4, num_bins=10, from_logits=True, name="cw"
            ),
            metrics.CalibrationError(binning="equal_mass", from_logits=True, name="ace"),
            metrics.KSCalibrationError(from_logits=True, name="ks"),
            metrics.SmoothCalibrationError(bandwidth=0.05, from_logits=True, name="sm"),
            metrics.ExpectedCalibrationError(from_logits=True, name="ece"),
        ],
        jit_compile=jit_compile,  # XLA: TensorFlow's default on a GPU, always on JAX
    )
    if how == "evaluate":
        logs = model.evaluate(logits, labels, batch_size=100, return_dict=True, verbose=0)
    else:
        history = model.fit(logits, labels, batch_size=100, epochs=1, shuffle=False, verbose=0)
        logs = {key: values[-1] for key, values in history.history.items()}
    probs = oracle.softmax(logits)
    assert logs["rms"] == pytest.approx(
        oracle.binned_error_loop(labels, probs, 15, "l2", "equal_width", False, "top_label"),
        abs=1e-4,
    )
    assert logs["ece"] == pytest.approx(
        oracle.binned_error_loop(labels, probs, 15, "l1", "equal_width", False, "top_label"),
        abs=1e-5,
    )
    assert logs["cw"] == pytest.approx(
        oracle.binned_error_loop(labels, probs, 10, "l1", "equal_width", False, "classwise"),
        abs=1e-4,
    )
    largest_cell = np.bincount(_cells(probs, 3000)).max() / len(labels)
    assert logs["ace"] == pytest.approx(
        metrics.calibration_error(labels, probs, binning="equal_mass"), abs=28 * largest_cell
    )
    assert logs["ks"] == pytest.approx(
        metrics.ks_calibration_error(labels, probs), abs=largest_cell + 1e-5
    )
    assert logs["sm"] == pytest.approx(
        metrics.smooth_calibration_error(labels, probs, bandwidth=0.05),
        abs=np.sqrt(2 / np.pi) / (0.05 * 1000),
    )


@pytest.mark.parametrize("how", ["evaluate", "fit"])
@pytest.mark.parametrize("weight_shape", ["(N,)", "(N, 1)"])
def test_debiased_metrics_with_sample_weights_in_compiled_steps(rng, how, weight_shape):
    # The squared-weight state of the debiased estimators, compiled, with weights of a scale
    # other than 1: equal to the float64 loop with effective bin sizes.
    labels, probs = _data(rng, n=500, ties=False)
    logits = np.log(probs).astype("float32")
    weights = rng.integers(1, 4, len(labels)).astype("float32") / 8.0
    fed = weights if weight_shape == "(N,)" else weights[:, None]
    model = _logits_model(4)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[
            metrics.CalibrationError(norm="l1", debiased=True, from_logits=True, name="d1"),
            metrics.CalibrationError(norm="l2", debiased=True, from_logits=True, name="d2"),
        ],
    )
    if how == "evaluate":
        logs = model.evaluate(
            logits, labels, sample_weight=fed, batch_size=100, return_dict=True, verbose=0
        )
    else:
        history = model.fit(
            logits, labels, sample_weight=fed, batch_size=100, epochs=1, shuffle=False, verbose=0
        )
        logs = {key: values[-1] for key, values in history.history.items()}
    probs = oracle.softmax(logits)
    for name, norm in (("d1", "l1"), ("d2", "l2")):
        expected = oracle.binned_error_loop(
            labels, probs, 15, norm, "equal_width", True, "top_label", weights
        )
        assert logs[name] == pytest.approx(expected, abs=1e-4)


def test_invalid_rows_give_nan_in_compiled_evaluate(rng):
    labels, probs = _data(rng, n=64, ties=False)
    model = _logits_model(4)
    model.compile(
        loss="sparse_categorical_crossentropy",
        metrics=[
            metrics.CalibrationError(name="ce"),
            metrics.KSCalibrationError(name="ks"),
            metrics.SmoothCalibrationError(bandwidth=0.1, name="sm"),
        ],
    )
    # Logits (rows that are not distributions) measured as probabilities: NaN, not a number.
    logs = model.evaluate(
        np.log(probs).astype("float32"), labels, batch_size=32, return_dict=True, verbose=0
    )
    assert np.isnan(logs["ce"]) and np.isnan(logs["ks"]) and np.isnan(logs["sm"])


def test_column_weights_and_masked_samples(rng):
    labels, probs = _data(rng, n=200, ties=False)
    weights = rng.integers(0, 3, len(labels)).astype("float32")
    metric = metrics.CalibrationError(10, norm="l2")
    metric.update_state(labels[:, None], probs, sample_weight=weights[:, None])
    expected = oracle.binned_error_loop(
        labels, probs, 10, "l2", "equal_width", False, "top_label", weights
    )
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "metric",
    [
        metrics.CalibrationError(
            10, norm="l2", binning="equal_mass", debiased=True, resolution=500
        ),
        metrics.CalibrationError(mode="classwise", num_classes=4, norm="max"),
        metrics.KSCalibrationError(resolution=77, from_logits=True),
        metrics.SmoothCalibrationError(bandwidth=0.05, resolution=300, validate_args=True),
    ],
    ids=lambda m: m.name,
)
def test_config_round_trip(metric):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is type(metric)
    assert restored.get_config() == metric.get_config()


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: metrics.CalibrationError(norm="l3"), "norm"),
        (lambda: metrics.CalibrationError(binning="quantile"), "binning"),
        (lambda: metrics.CalibrationError(mode="marginal"), "mode"),
        (lambda: metrics.CalibrationError(norm="max", debiased=True), "debiased"),
        (lambda: metrics.CalibrationError(mode="classwise"), "num_classes"),
        (lambda: metrics.CalibrationError(resolution=0), "resolution"),
        (lambda: metrics.CalibrationError(num_bins=2.5), "num_bins"),
        (lambda: metrics.SmoothCalibrationError(bandwidth=0.0), "bandwidth"),
        (lambda: metrics.calibration_error([0], [[1.0, 0.0]], n_bootstrap=1), "n_bootstrap"),
        (
            lambda: metrics.ks_calibration_error(
                [0], [[1.0, 0.0]], n_bootstrap=5, confidence_level=1
            ),
            "confidence_level",
        ),
        (lambda: metrics.smooth_calibration_error([0], [[0.7, 0.7]]), "probabilities"),
    ],
)
def test_bad_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("binning", ["equal_width", "equal_mass"])
def test_debiased_estimators_do_not_depend_on_the_scale_of_the_weights(norm, binning):
    # Before: weights all 1 gave a debiased ECE of +0.0093, weights all 1/N -0.853.
    rng = np.random.default_rng(7)
    labels, probs = _data(rng, n=600, ties=False)
    unweighted = metrics.calibration_error(labels, probs, norm=norm, binning=binning, debiased=True)
    expected = oracle.binned_error_loop(labels, probs, 15, norm, binning, True, "top_label")
    assert unweighted == pytest.approx(expected, abs=1e-9)
    for scale in (1.0, 1.0 / 600, 0.5, 40.0):
        weights = np.full(600, scale)
        got = metrics.calibration_error(
            labels, probs, norm=norm, binning=binning, debiased=True, sample_weight=weights
        )
        assert got == pytest.approx(unweighted, abs=1e-9)
    # The streaming metric with sample_weight=0.5 (before: 0.0029 against 0.0093).
    metric = metrics.CalibrationError(
        num_bins=15, norm=norm, binning=binning, debiased=True, resolution=3000
    )
    metric.update_state(labels, probs, sample_weight=np.full(600, 0.5))
    tolerance = 1e-6 if binning == "equal_width" else 2e-2  # float32 state
    assert float(metric.result()) == pytest.approx(unweighted, abs=tolerance)
