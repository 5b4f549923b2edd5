"""Streaming calibration metrics against explicit NumPy loops and tfp."""

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from tests.oracle import ece_loop as _ece_loop


def _mce_loop(labels, probs, num_bins):
    gaps = []
    for b in range(num_bins):
        members = [
            (max(p), float(np.argmax(p) == y))
            for y, p in zip(labels, probs)
            if min(int(max(p) * num_bins), num_bins - 1) == b
        ]
        if members:
            conf = np.mean([c for c, _ in members])
            acc = np.mean([a for _, a in members])
            gaps.append(abs(acc - conf))
    return max(gaps)


def _classwise_loop(labels, probs, num_bins):
    n, k = probs.shape
    total = 0.0
    for c in range(k):
        for b in range(num_bins):
            idx = [i for i in range(n) if min(int(probs[i, c] * num_bins), num_bins - 1) == b]
            if idx:
                conf = np.mean(probs[idx, c])
                acc = np.mean(labels[idx] == c)
                total += len(idx) / n * abs(acc - conf)
    return total / k


@pytest.fixture
def data(rng):
    logits = 2.5 * rng.standard_normal((300, 6))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, 6, 300)
    return logits, probs, labels


def test_ece_metric_matches_loop(data):
    logits, probs, labels = data
    expected = _ece_loop(labels, probs, 15)
    for y, x, from_logits in (
        (labels, probs, False),
        (np.eye(6)[labels], probs, False),
        (labels[:, None], probs, False),
        (labels, logits, True),
    ):
        m = klr.ExpectedCalibrationError(from_logits=from_logits)
        m.update_state(y, x)
        np.testing.assert_allclose(float(m.result()), expected, atol=1e-6)


def test_any_numpy_layout_gives_the_loop_value(data):
    # On torch, C-contiguous writable arrays are wrapped without a copy; the rest are copied.
    _, probs, labels = data
    expected = _ece_loop(labels, probs, 15)
    wide = np.zeros((300, 12))
    wide[:, ::2] = probs
    frozen = probs.copy()
    frozen.flags.writeable = False
    for x, y in (
        (wide[:, ::2], labels),  # strided
        (np.asfortranarray(probs), labels.astype(np.uint32)),  # column-major, uint32 ids
        (frozen, labels),  # read-only
        (probs.astype(np.float32), labels.astype(np.int8)),
    ):
        m = klr.ExpectedCalibrationError()
        m.update_state(y, x)
        np.testing.assert_allclose(float(m.result()), expected, atol=1e-6)
    np.testing.assert_array_equal(frozen, probs)  # inputs are never written


def test_ece_with_time_axis(data):
    _, probs, labels = data
    m = klr.ExpectedCalibrationError()
    m.update_state(labels.reshape(30, 10), probs.reshape(30, 10, 6))
    np.testing.assert_allclose(float(m.result()), _ece_loop(labels, probs, 15), atol=1e-6)


def test_adversarial_bin_edges(rng):
    # Confidences exactly on edges (k/15 for k with exact binary form: 0.2 = 3/15, 0.6 = 9/15),
    # 1.0, and all in one bin.
    conf = np.array([1.0, 1.0, 0.6, 0.6, 0.2, 0.4, 0.8])
    probs = np.stack([conf, 1 - conf], -1)
    labels = np.array([0, 1, 0, 1, 1, 1, 0])
    m = klr.ExpectedCalibrationError(num_bins=15)
    m.update_state(labels, probs.astype("float64"))
    np.testing.assert_allclose(float(m.result()), _ece_loop(labels, probs, 15), atol=1e-7)
    one_bin = klr.ExpectedCalibrationError(num_bins=15)
    one_bin.update_state([0, 1, 0], np.full((3, 2), 0.5))
    np.testing.assert_allclose(float(one_bin.result()), abs(1 / 3 - 0.5), atol=1e-7)
    # Tied maxima: the prediction is the lowest tied index, as argmax (and the reference code).
    ties = klr.ExpectedCalibrationError(num_bins=15)
    ties.update_state([1, 1, 1, 0], np.tile([[0.4, 0.4, 0.2]], (4, 1)))
    np.testing.assert_allclose(float(ties.result()), abs(0.25 - 0.4), atol=1e-7)
    assert klr.expected_calibration_error([1, 1, 1, 0], np.tile([[0.4, 0.4, 0.2]], (4, 1))) == (
        pytest.approx(_ece_loop([1, 1, 1, 0], np.tile([[0.4, 0.4, 0.2]], (4, 1)), 15))
    )


def test_ece_equals_tfp_where_conventions_agree(data):
    tfp = pytest.importorskip("tensorflow_probability")
    logits, probs, labels = data
    expected = tfp.stats.expected_calibration_error(
        15, logits=logits.astype("float32"), labels_true=labels.astype("int32")
    )
    m = klr.ExpectedCalibrationError(from_logits=True)
    m.update_state(labels, logits.astype("float32"))
    np.testing.assert_allclose(float(m.result()), float(expected), atol=1e-6)


def test_streaming_over_uneven_batches_equals_one_shot(data):
    _, probs, labels = data
    one_shot = klr.ExpectedCalibrationError()
    one_shot.update_state(labels, probs)
    streamed = klr.ExpectedCalibrationError()
    cuts = [0, 1, 17, 64, 65, 150, 222, 300]  # 7 uneven batches
    for a, b in zip(cuts, cuts[1:]):
        streamed.update_state(labels[a:b], probs[a:b])
        np.testing.assert_allclose(
            float(streamed.result()), _ece_loop(labels[:b], probs[:b], 15), atol=1e-6
        )
    np.testing.assert_allclose(float(streamed.result()), float(one_shot.result()), atol=1e-7)


def test_sample_weights_equal_repetition(data):
    _, probs, labels = data
    weights = np.random.default_rng(0).integers(0, 4, len(labels))
    weighted = klr.ExpectedCalibrationError()
    weighted.update_state(labels, probs, sample_weight=weights)
    repeated = klr.ExpectedCalibrationError()
    repeated.update_state(np.repeat(labels, weights), np.repeat(probs, weights, axis=0))
    np.testing.assert_allclose(float(weighted.result()), float(repeated.result()), atol=1e-6)
    assert klr.expected_calibration_error(labels, probs, sample_weight=weights) == pytest.approx(
        float(repeated.result()), abs=1e-6
    )


def test_reset_state(data):
    _, probs, labels = data
    m = klr.ExpectedCalibrationError()
    m.update_state(labels, probs)
    m.reset_state()
    assert float(m.result()) == 0.0
    m.update_state(labels[:10], probs[:10])
    np.testing.assert_allclose(float(m.result()), _ece_loop(labels[:10], probs[:10], 15), atol=1e-6)


def test_mce_matches_loop(data):
    _, probs, labels = data
    m = klr.MaximumCalibrationError(num_bins=10)
    m.update_state(labels, probs)
    np.testing.assert_allclose(float(m.result()), _mce_loop(labels, probs, 10), atol=1e-6)


def test_classwise_ece_matches_loop(data):
    _, probs, labels = data
    m = klr.ClasswiseExpectedCalibrationError(num_classes=6, num_bins=15)
    m.update_state(labels[:150], probs[:150])
    m.update_state(labels[150:], probs[150:])
    np.testing.assert_allclose(float(m.result()), _classwise_loop(labels, probs, 15), atol=1e-6)


def test_brier_score_matches_numpy(data):
    logits, probs, labels = data
    expected = np.mean(np.sum((probs - np.eye(6)[labels]) ** 2, axis=-1))
    for y, x, from_logits in (
        (labels, probs, False),
        (np.eye(6)[labels], probs, False),
        (labels, logits, True),
    ):
        m = klr.BrierScore(from_logits=from_logits)
        m.update_state(y, x)
        np.testing.assert_allclose(float(m.result()), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "metric",
    [
        klr.ExpectedCalibrationError(num_bins=10, from_logits=True),
        klr.MaximumCalibrationError(num_bins=20),
        klr.ClasswiseExpectedCalibrationError(num_classes=4),
        klr.BrierScore(from_logits=True),
    ],
    ids=lambda m: type(m).__name__,
)
def test_config_round_trip(metric):
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(restored) is type(metric)
    assert restored.get_config() == metric.get_config()


def test_compile_puts_ece_into_history_and_survives_save(tmp_path, rng):
    x = rng.standard_normal((128, 8)).astype("float32")
    y = rng.integers(0, 3, 128)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile(
        optimizer="sgd",
        loss=klr.SparseLabelRelaxation(0.1, from_logits=True),
        metrics=[
            klr.ExpectedCalibrationError(from_logits=True),
            klr.BrierScore(from_logits=True),
            klr.ClasswiseExpectedCalibrationError(3, from_logits=True),
        ],
    )
    history = model.fit(x, y, validation_split=0.25, epochs=2, batch_size=32, verbose=0)
    for key in ("ece", "val_ece", "brier_score", "val_classwise_ece"):
        assert key in history.history, key
    # The epoch value is the ECE of the whole epoch's predictions (not a batch mean):
    ece = model.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)["ece"]
    logits = model.predict(x, verbose=0)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(ece, klr.expected_calibration_error(y, probs), atol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(
        loaded.evaluate(x, y, verbose=0, return_dict=True)["ece"], ece, atol=1e-6
    )


def test_bad_input():
    with pytest.raises(ValueError, match="`num_bins`"):
        klr.ExpectedCalibrationError(num_bins=0)
    with pytest.raises(ValueError, match="`num_classes`"):
        klr.ClasswiseExpectedCalibrationError(num_classes=1)
    m = klr.ExpectedCalibrationError(validate_args=True)
    with pytest.raises(ValueError, match="from_logits=True"):
        m.update_state([0], [[2.0, -1.0]])
    with pytest.raises(ValueError, match="from_logits=True"):
        m.update_state([0], [[0.7, 0.7]])
    with pytest.raises(ValueError, match=r"class ids must be integers in \[0, 2\)"):
        m.update_state([2], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="one-hot"):
        m.update_state([[0.5, 0.5]], [[0.5, 0.5]])


def test_ece_reaches_tensorboard(tmp_path, rng):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    x = rng.standard_normal((64, 8)).astype("float32")
    y = rng.integers(0, 3, 64)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile(
        optimizer="sgd",
        loss=klr.SparseLabelRelaxation(0.1, from_logits=True),
        metrics=[klr.ExpectedCalibrationError(from_logits=True)],
    )
    history = model.fit(
        x,
        y,
        validation_split=0.25,
        epochs=2,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path))],
    )
    for split, key in (("train", "ece"), ("validation", "val_ece")):
        events = event_accumulator.EventAccumulator(str(tmp_path / split))
        events.Reload()
        tags = events.Tags()["tensors"] + events.Tags()["scalars"]
        assert "epoch_ece" in tags, (split, tags)
        if "epoch_ece" in events.Tags()["tensors"]:
            import tensorflow as tf

            logged = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("epoch_ece")]
        else:
            logged = [e.value for e in events.Scalars("epoch_ece")]
        np.testing.assert_allclose(logged, history.history[key], rtol=1e-5)
