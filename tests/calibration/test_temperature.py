"""TemperatureScaling and calibrate against independent references."""

import warnings

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from tests import oracle
from tests.oracle import ece_loop as _ece_loop


def _calibrated_logits(rng, n=5000, k=10, scale=1.5):
    """Logits whose softmax is calibrated by construction: labels drawn from it."""
    z = scale * rng.standard_normal((n, k))
    p = oracle.softmax(z)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return z, labels


def _nll(z, labels, temperature):
    p = oracle.softmax(z / temperature)
    return -np.mean(np.log(p[np.arange(len(labels)), labels]))


def test_layer_divides_logits():
    layer = klr.TemperatureScaling(temperature=2.5)
    x = np.array([[1.0, -2.0, 0.5]], "float32")
    np.testing.assert_allclose(np.asarray(layer(x)), x / 2.5, rtol=1e-6)


def test_layer_from_probabilities_uses_log_probabilities():
    p = np.array([[0.7, 0.2, 0.1]], "float32")
    out = np.asarray(klr.TemperatureScaling(2.0, from_logits=False)(p))
    np.testing.assert_allclose(oracle.softmax(out), oracle.softmax(np.log(p) / 2.0), rtol=1e-5)


def test_nll_fit_recovers_temperature_and_lowers_ece(rng):
    z, labels = _calibrated_logits(rng)
    layer = klr.TemperatureScaling()
    temperature = layer.fit(3.0 * z, labels, method="nll")
    assert temperature == pytest.approx(3.0, rel=0.05)
    assert float(layer.temperature.numpy()) == pytest.approx(temperature)
    before = _ece_loop(labels, oracle.softmax(3.0 * z), 15)
    after = _ece_loop(labels, oracle.softmax(3.0 * z / temperature), 15)
    assert after < 0.5 * before


def test_nll_fit_is_the_nll_minimiser(rng):
    from scipy.optimize import minimize_scalar

    z, labels = _calibrated_logits(rng, n=2000)
    logits = 2.2 * z + 0.3 * rng.standard_normal(z.shape)
    reference = minimize_scalar(
        lambda log_t: _nll(logits, labels, np.exp(log_t)),
        bounds=(-3, 3),
        method="bounded",
        options={"xatol": 1e-10},
    )
    fitted = klr.TemperatureScaling().fit(logits, labels, method="nll")
    assert fitted == pytest.approx(np.exp(reference.x), rel=1e-5)


def test_grid_fit_returns_the_grid_member_with_lowest_ece(rng):
    z, labels = _calibrated_logits(rng, n=2000)
    logits = 1.7 * z
    eces = [_ece_loop(labels, oracle.softmax(logits / t), 15) for t in klr.PAPER_TEMPERATURE_GRID]
    fitted = klr.TemperatureScaling().fit(logits, labels)
    assert fitted in klr.PAPER_TEMPERATURE_GRID
    assert fitted == klr.PAPER_TEMPERATURE_GRID[int(np.argmin(eces))]
    # An interior optimum (T = 1.7): no GridEdgeWarning.
    custom = klr.TemperatureScaling().fit(logits, np.eye(10)[labels], grid=(0.5, 1.0, 2.0, 3.0))
    assert custom in (1.0, 2.0)


def test_save_and_load_keep_temperature(tmp_path, rng):
    z, labels = _calibrated_logits(rng, n=500)
    inputs = keras.Input((10,))
    scaling = klr.TemperatureScaling()
    scaling.fit(2.0 * z, labels, method="nll")
    model = keras.Model(inputs, keras.layers.Softmax()(scaling(inputs)))
    model.save(tmp_path / "ts.keras")
    loaded = keras.models.load_model(tmp_path / "ts.keras", safe_mode=True)
    layer = next(lyr for lyr in loaded.layers if isinstance(lyr, klr.TemperatureScaling))
    assert float(layer.temperature.numpy()) == pytest.approx(float(scaling.temperature.numpy()))
    np.testing.assert_allclose(loaded.predict(z, verbose=0), model.predict(z, verbose=0), rtol=1e-6)
    restored = klr.TemperatureScaling.from_config(scaling.get_config())
    assert float(restored.temperature.numpy()) == pytest.approx(float(scaling.temperature.numpy()))


def test_mixed_precision_computes_in_float32(restore_policy):
    keras.config.set_dtype_policy("mixed_float16")
    layer = klr.TemperatureScaling(2.0)
    out = layer(keras.ops.cast(np.array([[1.0, 2.0]]), "float16"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), float("nan"), "2", None])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match="`temperature`"):
        klr.TemperatureScaling(temperature)
    with pytest.raises(ValueError, match="`temperature`"):
        klr.TemperatureScaling().set_temperature(temperature)


def test_bad_fit_input():
    layer = klr.TemperatureScaling()
    with pytest.raises(ValueError, match="non-empty"):
        layer.fit(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(ValueError, match=r"class ids must be integers in \[0, 3\)"):
        layer.fit(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match="`method`"):
        layer.fit(np.zeros((2, 3)), [0, 1], method="adam")
    with pytest.raises(ValueError, match="`temperature`"):
        layer.fit(np.zeros((2, 3)), [0, 1], grid=(1.0, -1.0))
    with pytest.raises(ValueError, match="one label per row"):
        layer.fit(np.zeros((2, 3)), [0, 1, 2])


@pytest.mark.parametrize("ends_in_softmax", [True, False], ids=["softmax_model", "logits_model"])
def test_calibrate_returns_probabilities_with_fitted_temperature(tmp_path, rng, ends_in_softmax):
    z, labels = _calibrated_logits(rng, n=2000, scale=1.0)
    # A "model" whose output is 2.5 * its input: the fitted T must undo the 2.5.
    inputs = keras.Input((10,))
    scaled = keras.layers.Rescaling(2.5)(inputs)
    outputs = keras.layers.Activation("softmax")(scaled) if ends_in_softmax else scaled
    model = keras.Model(inputs, outputs)
    calibrated = klr.calibrate(model, (z, labels), method="nll")
    layer = next(lyr for lyr in calibrated.layers if isinstance(lyr, klr.TemperatureScaling))
    # The NLL minimiser on these held-out outputs, found independently.
    from scipy.optimize import minimize_scalar

    best = minimize_scalar(
        lambda log_t: _nll(2.5 * z, labels, np.exp(log_t)),
        bounds=(-3, 3),
        method="bounded",
        options={"xatol": 1e-9},
    )
    assert float(layer.temperature.numpy()) == pytest.approx(np.exp(best.x), rel=1e-4)
    assert float(layer.temperature.numpy()) == pytest.approx(2.5, rel=0.15)
    probs = calibrated.predict(z, verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        probs, oracle.softmax(2.5 * z / float(layer.temperature.numpy())), atol=1e-5
    )
    calibrated.save(tmp_path / "calibrated.keras")
    loaded = keras.models.load_model(tmp_path / "calibrated.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(z, verbose=0), probs, atol=1e-6)


def test_calibrate_accepts_a_dataset(rng):
    tf = pytest.importorskip("tensorflow")

    z, labels = _calibrated_logits(rng, n=600)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Rescaling(2.0)])
    data = tf.data.Dataset.from_tensor_slices((z.astype("float32"), labels)).batch(64)
    calibrated = klr.calibrate(model, data, method="nll")
    layer = next(lyr for lyr in calibrated.layers if isinstance(lyr, klr.TemperatureScaling))
    assert float(layer.temperature.numpy()) == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize("seed", [0, 1])
def test_calibrate_lowers_test_ece_of_a_dense_network_on_digits(seed):
    """Real data: the paper's 2x1024 network trained with CE on digits, then calibrated."""
    from keras_label_relaxation.datasets import load_digits
    from keras_label_relaxation.models import simple_dense

    x, y = load_digits()
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    # Few training samples and long training: the network fits them perfectly and is
    # overconfident on the ~1,200 test digits (accuracy ~93-95%).
    x_train, y_train = x[:200], y[:200]
    x_cal, y_cal = x[200:600], y[200:600]
    x_test, y_test = x[600:], y[600:]
    mean = x_train.mean(0)
    keras.utils.set_random_seed(seed)
    model = simple_dense((8, 8, 1), 10)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train - mean, y_train, batch_size=64, epochs=100, verbose=0)
    before = klr.expected_calibration_error(
        y_test, oracle.softmax(model.predict(x_test - mean, verbose=0))
    )
    calibrated = klr.calibrate(model, (x_cal - mean, y_cal), method="nll")
    after = klr.expected_calibration_error(y_test, calibrated.predict(x_test - mean, verbose=0))
    assert after < before


# --- Right or loud: probabilities are not logits; calibrate takes validation_data as fit does.


def _weighted_nll_minimiser(z, labels, weights):
    """The NLL-optimal T by SciPy's bounded scalar search on the explicit weighted NLL."""
    scipy_optimize = pytest.importorskip("scipy.optimize")

    def nll(temperature):
        p = oracle.softmax(z / temperature)
        w = np.broadcast_to(np.asarray(weights, dtype=float), labels.shape)
        return -np.sum(w * np.log(p[np.arange(len(labels)), labels])) / w.sum()

    return scipy_optimize.minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x


def test_fit_on_probabilities_is_refused_naming_the_argument(rng):
    # The classic mistake: a silently wrong T (about 0.3 here where the logits give ~2).
    z, labels = _calibrated_logits(rng, n=2000, scale=1.0)
    probabilities = oracle.softmax(2.0 * z)
    with pytest.raises(ValueError, match=r"argument `logits`.*probabilities, not logits"):
        klr.TemperatureScaling().fit(probabilities, labels, method="nll")
    # The layer built for probabilities fits the same T as the logits give.
    from_probs = klr.TemperatureScaling(from_logits=False).fit(probabilities, labels, "nll")
    from_logits = klr.TemperatureScaling().fit(2.0 * z, labels, method="nll")
    np.testing.assert_allclose(from_probs, from_logits, rtol=1e-4)
    np.testing.assert_allclose(
        from_logits, _weighted_nll_minimiser(2.0 * z, labels, 1.0), rtol=1e-3
    )


def test_fit_of_a_probability_layer_on_logits_is_refused(rng):
    z, labels = _calibrated_logits(rng, n=200)
    with pytest.raises(ValueError, match=r"argument `logits`.*from_logits=False"):
        klr.TemperatureScaling(from_logits=False).fit(z, labels)


def test_weighted_fit_equals_repetition(rng):
    z, labels = _calibrated_logits(rng, n=600, scale=2.0)
    weights = rng.integers(0, 4, len(labels))
    repeated = np.repeat(np.arange(len(labels)), weights)
    for method in ("nll", "grid"):
        weighted = klr.TemperatureScaling().fit(z, labels, method=method, sample_weight=weights)
        expected = klr.TemperatureScaling().fit(z[repeated], labels[repeated], method=method)
        np.testing.assert_allclose(weighted, expected, rtol=1e-6)
    np.testing.assert_allclose(
        klr.TemperatureScaling().fit(z, labels, "nll", sample_weight=weights[:, None]),
        _weighted_nll_minimiser(z, labels, weights.astype(float)),
        rtol=1e-3,
    )
    with pytest.raises(ValueError, match="`sample_weight`"):
        klr.TemperatureScaling().fit(z, labels, sample_weight=-weights)


def _scaled_model(factor, ends_in_softmax, extra_identity=False):
    inputs = keras.Input((10,))
    outputs = keras.layers.Rescaling(factor)(inputs)
    if ends_in_softmax:
        outputs = keras.layers.Activation("softmax")(outputs)
    if extra_identity:
        outputs = keras.layers.Identity()(outputs)
    return keras.Model(inputs, outputs)


def _temperature(calibrated):
    return float(
        keras.ops.convert_to_numpy(calibrated.get_layer("temperature_scaling").temperature)
    )


def test_calibrate_takes_validation_data_as_fit_does(rng):
    tf = pytest.importorskip("tensorflow")

    z, labels = _calibrated_logits(rng, n=1200, scale=1.0)
    x = z.astype("float32")
    weights = rng.integers(0, 3, len(labels)).astype("float32")
    model = _scaled_model(2.5, ends_in_softmax=False)
    reference = _temperature(klr.calibrate(model, (x, labels), method="nll"))
    np.testing.assert_allclose(reference, _weighted_nll_minimiser(2.5 * z, labels, 1.0), rtol=1e-3)
    as_list = _temperature(klr.calibrate(model, [x, labels], method="nll"))
    np.testing.assert_allclose(as_list, reference, rtol=1e-6)
    batches = tf.data.Dataset.from_tensor_slices((x, labels)).batch(100)
    np.testing.assert_allclose(
        _temperature(klr.calibrate(model, batches, method="nll")), reference, rtol=1e-6
    )
    weighted = _temperature(klr.calibrate(model, (x, labels, weights), method="nll"))
    np.testing.assert_allclose(
        weighted, _weighted_nll_minimiser(2.5 * z, labels, weights.astype(float)), rtol=1e-3
    )
    weighted_batches = tf.data.Dataset.from_tensor_slices((x, labels, weights)).batch(64)
    np.testing.assert_allclose(
        _temperature(klr.calibrate(model, weighted_batches, method="nll")), weighted, rtol=1e-6
    )
    generator = ([x[i : i + 100], labels[i : i + 100]] for i in range(0, len(labels), 100))
    np.testing.assert_allclose(
        _temperature(klr.calibrate(model, generator, method="nll")), reference, rtol=1e-6
    )
    with pytest.raises(ValueError, match="`validation_data`"):
        klr.calibrate(model, [(x,)], method="nll")


def test_calibrate_from_logits_override(rng):
    z, labels = _calibrated_logits(rng, n=1000, scale=1.0)
    x = z.astype("float32")
    # Softmax, then an Identity layer: the last layer is no softmax, so the guess is
    # "logits", and the probability rows are refused, naming from_logits.
    hidden_softmax = _scaled_model(2.0, ends_in_softmax=True, extra_identity=True)
    with pytest.raises(ValueError, match="from_logits=False"):
        klr.calibrate(hidden_softmax, (x, labels), method="nll")
    calibrated = klr.calibrate(hidden_softmax, (x, labels), method="nll", from_logits=False)
    np.testing.assert_allclose(
        _temperature(calibrated), _weighted_nll_minimiser(2.0 * z, labels, 1.0), rtol=1e-3
    )
    probs = keras.ops.convert_to_numpy(calibrated.predict(x[:5], verbose=0))
    np.testing.assert_allclose(
        probs, oracle.softmax(2.0 * z[:5] / _temperature(calibrated)), atol=1e-5
    )
    # A logits model forced to "probabilities" is refused too.
    with pytest.raises(ValueError, match="from_logits=True"):
        klr.calibrate(_scaled_model(2.0, False), (x, labels), from_logits=False)
    with pytest.raises(ValueError, match="`from_logits`"):
        klr.calibrate(_scaled_model(2.0, False), (x, labels), from_logits="auto")


# --- A confident softmax keeps its tail: log p is floored at the dtype's smallest normal
# number, not at keras.backend.epsilon() (1e-7), in fit and in call.

TRUE_TEMPERATURE = 6.0


def _confident_logits(rng, n=3000, k=10):
    """Logits ``z = 6 g`` of a confident model whose true temperature is 6.

    ``g = 2 N(0, 1)`` and labels are drawn from ``softmax(g) = softmax(z / 6)``.
    About half of the probabilities of ``softmax(z)`` lie below 1e-7, all above
    float32's smallest normal number (checked here, float64).
    """
    g = 2.0 * rng.standard_normal((n, k))
    cumulative = np.cumsum(oracle.softmax(g), axis=-1)
    labels = np.minimum((cumulative < rng.random((n, 1))).sum(axis=-1), k - 1)
    z = TRUE_TEMPERATURE * g
    log_p = z - z.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    assert (log_p < np.log(1e-7)).mean() > 0.4
    assert log_p.min() > np.log(np.finfo(np.float32).tiny) + 1.0
    return z, labels


def _nll_minimiser_log_space(z, labels):
    """The NLL-optimal T by SciPy's bounded search, NLL in float64 log space (no clipping)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    rows = np.arange(len(labels))
    result = minimize_scalar(
        lambda log_t: -np.mean(log_softmax(z / np.exp(log_t), axis=-1)[rows, labels]),
        bounds=(0.0, 3.0),  # T in [1, 20]
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(np.exp(result.x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_through_a_confident_softmax_equals_fit_on_its_logits(rng, dtype):
    z, labels = _confident_logits(rng)
    reference = _nll_minimiser_log_space(z, labels)
    assert reference == pytest.approx(TRUE_TEMPERATURE, rel=0.05)
    from_logits = klr.TemperatureScaling().fit(z, labels, method="nll")
    assert from_logits == pytest.approx(reference, rel=1e-5)
    probabilities = oracle.softmax(z).astype(dtype)
    layer = klr.TemperatureScaling(from_logits=False, dtype=dtype)
    # With log p clipped at 1e-7 this was 4.7 (float32 and float64 alike).
    from_probabilities = layer.fit(probabilities, labels, method="nll")
    assert from_probabilities == pytest.approx(from_logits, rel=0.01)
    assert from_probabilities == pytest.approx(reference, rel=1e-3)
    # The layer scales the same log-probabilities the fit saw: softmax(log p / T) is
    # softmax(z / T), tail included.
    calibrated = oracle.softmax(keras.ops.convert_to_numpy(layer(probabilities)))
    np.testing.assert_allclose(calibrated, oracle.softmax(z / from_probabilities), atol=2e-6)


def test_calibrate_through_a_softmax_layer_keeps_the_tail(rng):
    z, labels = _confident_logits(rng)
    inputs = keras.Input((z.shape[1],))
    logits = keras.layers.Rescaling(TRUE_TEMPERATURE)(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    x = (z / TRUE_TEMPERATURE).astype("float32")
    calibrated = klr.calibrate(model, (x, labels), method="nll")
    layer = calibrated.get_layer("temperature_scaling")
    assert layer.from_logits is False  # chosen from the Softmax layer
    temperature = _temperature(calibrated)
    assert temperature == pytest.approx(klr.TemperatureScaling().fit(z, labels, "nll"), rel=0.01)
    assert temperature == pytest.approx(_nll_minimiser_log_space(z, labels), rel=0.01)
    np.testing.assert_allclose(
        calibrated.predict(x, verbose=0), oracle.softmax(z / temperature), atol=2e-6
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_probability_floors(dtype):
    from keras_label_relaxation import _numerics

    p = np.array([[0.5, 0.5 - 3e-30, 1e-30, 2e-30, 0.0]], dtype=dtype)
    tensor = keras.ops.convert_to_tensor(p)
    # Default: the losses' clip at [eps, 1 - eps], unchanged to the bit, as Keras'
    # cross-entropy (whose torch backend rounds eps to float32: agreement to 1e-9).
    clipped = keras.ops.convert_to_numpy(_numerics.log_probabilities(tensor, from_logits=False))
    eps = keras.backend.epsilon()
    unchanged = keras.ops.log(
        keras.ops.clip(tensor / keras.ops.sum(tensor, axis=-1, keepdims=True), eps, 1.0 - eps)
    )
    np.testing.assert_array_equal(clipped, keras.ops.convert_to_numpy(unchanged))
    for k in range(p.shape[1]):
        keras_ce = keras.ops.categorical_crossentropy(
            keras.ops.convert_to_tensor(np.eye(p.shape[1], dtype=dtype)[k : k + 1]), tensor
        )
        np.testing.assert_allclose(-keras.ops.convert_to_numpy(keras_ce), clipped[:, k], rtol=1e-7)
    # "tiny": log p down to the dtype's smallest normal number, which log 0 becomes.
    tiny = keras.ops.convert_to_numpy(
        _numerics.log_probabilities(tensor, from_logits=False, floor="tiny")
    )
    assert tiny.dtype == np.dtype(dtype)
    expected = np.log(np.maximum(p.astype(np.float64), np.finfo(dtype).tiny))
    np.testing.assert_allclose(tiny, expected, rtol=1e-6)
    nan_row = keras.ops.convert_to_tensor(np.array([[0.5, np.nan]], dtype=dtype))
    assert np.isnan(
        keras.ops.convert_to_numpy(_numerics.log_probabilities(nan_row, False, floor="tiny"))
    ).all()
    with pytest.raises(ValueError, match=r"argument `floor`.*Received: floor='zero'"):
        _numerics.log_probabilities(tensor, from_logits=False, floor="zero")


# --- The paper's grid is loud when it chooses one of its edges.


def test_grid_edge_warning_is_public():
    from keras_label_relaxation.calibration import GridEdgeWarning

    assert issubclass(GridEdgeWarning, UserWarning)
    assert "GridEdgeWarning" in klr.calibration.__all__


@pytest.mark.parametrize(
    "scale, edge, side",
    [(8.0, 3.0, "largest"), (0.1, 0.25, "smallest")],
    ids=["best_above_grid", "best_below_grid"],
)
def test_grid_fit_at_an_edge_warns(rng, scale, edge, side):
    from keras_label_relaxation.calibration import GridEdgeWarning

    z, labels = _calibrated_logits(rng, n=2000)
    logits = scale * z  # calibrated at T = scale, outside [0.25, 3]
    eces = [_ece_loop(labels, oracle.softmax(logits / t), 15) for t in klr.PAPER_TEMPERATURE_GRID]
    assert klr.PAPER_TEMPERATURE_GRID[int(np.argmin(eces))] == edge
    with pytest.warns(GridEdgeWarning) as record:
        fitted = klr.TemperatureScaling().fit(logits, labels, method="grid")
    assert fitted == edge
    (warning,) = [w for w in record if w.category is GridEdgeWarning]
    message = str(warning.message)
    assert f"T={edge:g}, the {side} value of argument `grid`" in message
    assert "[0.25, 3]" in message and 'method="nll"' in message
    assert warning.filename == __file__  # points at the caller of fit
    # calibrate warns too, pointing at its caller.
    model = _scaled_model(scale, ends_in_softmax=False)
    with pytest.warns(GridEdgeWarning, match=rf"T={edge:g}, the {side} value") as record:
        assert _temperature(klr.calibrate(model, (z.astype("float32"), labels))) == edge
    assert [w.filename for w in record if w.category is GridEdgeWarning] == [__file__]
    # The edge is the smallest or largest value, wherever it sits in the grid.
    unsorted = (1.0, 3.0, 0.25) if edge == 0.25 else (3.0, 0.25, 1.0)
    with pytest.warns(GridEdgeWarning, match=r"spans \[0\.25, 3\]"):
        assert klr.TemperatureScaling().fit(logits, labels, grid=unsorted) == edge


def test_grid_fit_inside_the_grid_warns_nothing(rng):
    z, labels = _calibrated_logits(rng, n=2000)
    logits = 1.7 * z
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = klr.TemperatureScaling().fit(logits, labels, method="grid")
        assert min(klr.PAPER_TEMPERATURE_GRID) < fitted < max(klr.PAPER_TEMPERATURE_GRID)
        # A grid of one value has no edge to warn about.
        assert klr.TemperatureScaling().fit(8.0 * z, labels, grid=(3.0,)) == 3.0
        assert klr.TemperatureScaling().fit(8.0 * z, labels, grid=(3.0, 3.0)) == 3.0
        # NLL fits have no grid.
        klr.TemperatureScaling().fit(8.0 * z, labels, method="nll")
