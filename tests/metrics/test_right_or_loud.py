"""The calibration metrics as users call them: compiled inside fit/evaluate, with masks,
column-shaped labels and weights. Every value is the float64 NumPy oracle's, or NaN.

These tests run under every backend (``make test-backends``): TensorFlow and JAX compile
the steps of ``fit``/``evaluate``, Keras' torch backend runs them eagerly.
"""

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from tests import oracle

K = 4


def _classwise_loop(labels, probs, num_bins, weights):
    """Classwise ECE: the weighted binned ECE of every class' probability, averaged."""
    total = 0.0
    for k in range(probs.shape[1]):
        p = probs[:, k]
        hit = (labels == k).astype(float)
        acc = 0.0
        for b in range(num_bins):
            members = [i for i in range(len(p)) if min(int(p[i] * num_bins), num_bins - 1) == b]
            n = sum(weights[i] for i in members)
            if n > 0:
                conf = sum(weights[i] * p[i] for i in members) / n
                freq = sum(weights[i] * hit[i] for i in members) / n
                acc += n / weights.sum() * abs(freq - conf)
        total += acc
    return total / probs.shape[1]


def _metrics(from_logits):
    return [
        klr.ExpectedCalibrationError(from_logits=from_logits),
        klr.MaximumCalibrationError(from_logits=from_logits),
        klr.ClasswiseExpectedCalibrationError(K, from_logits=from_logits),
        klr.BrierScore(from_logits=from_logits),
    ]


def _mce_loop(labels, probs, num_bins):
    gaps = []
    for b in range(num_bins):
        members = [i for i, p in enumerate(probs) if min(int(max(p) * num_bins), num_bins - 1) == b]
        if members:
            conf = np.mean([max(probs[i]) for i in members])
            acc = np.mean([float(np.argmax(probs[i]) == labels[i]) for i in members])
            gaps.append(abs(acc - conf))
    return max(gaps)


def _data(rng, n=96):
    x = rng.standard_normal((n, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0).astype("int64")
    return x, y


def _trained_logits_model(x, y, metrics):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(K)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=klr.SparseLabelRelaxation(0.1, from_logits=True),
        metrics=metrics,
    )
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    return model, history


def test_logits_model_with_default_metrics_reports_nan_in_fit_and_evaluate(rng):
    # The design card's usage with the metrics' default from_logits=False: the model
    # outputs logits, so every calibration metric is NaN, never a finite wrong number.
    x, y = _data(rng)
    model, history = _trained_logits_model(x, y, _metrics(from_logits=False))
    for name in ("ece", "mce", "classwise_ece", "brier_score"):
        assert np.isnan(history.history[name]).all(), (name, history.history[name])
    scores = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    for name in ("ece", "mce", "classwise_ece", "brier_score"):
        assert np.isnan(scores[name]), (name, scores[name])


def test_logits_model_with_from_logits_true_matches_the_oracle_in_evaluate(rng):
    x, y = _data(rng)
    model, history = _trained_logits_model(x, y, _metrics(from_logits=True))
    assert np.isfinite(history.history["ece"]).all()
    scores = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    probs = oracle.softmax(keras.ops.convert_to_numpy(model.predict(x, verbose=0)))
    ones = np.ones(len(y))
    np.testing.assert_allclose(scores["ece"], oracle.ece_loop(y, probs, 15), atol=2e-6)
    np.testing.assert_allclose(scores["mce"], _mce_loop(y, probs, 15), atol=2e-6)
    np.testing.assert_allclose(
        scores["classwise_ece"], _classwise_loop(y, probs, 15, ones), atol=2e-6
    )
    np.testing.assert_allclose(scores["brier_score"], oracle.brier_loop(y, probs), atol=2e-6)


def test_softmax_model_with_default_metrics_matches_the_oracle_in_evaluate(rng):
    x, y = _data(rng)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(K, activation="softmax")])
    model.compile(optimizer="sgd", loss=klr.SparseLabelRelaxation(0.1), metrics=_metrics(False))
    scores = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    probs = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).astype(np.float64)
    np.testing.assert_allclose(scores["ece"], oracle.ece_loop(y, probs, 15), atol=2e-6)
    np.testing.assert_allclose(scores["brier_score"], oracle.brier_loop(y, probs), atol=2e-6)


def test_one_bad_row_makes_the_streamed_ece_nan_and_reset_clears_it():
    metric = klr.ExpectedCalibrationError()
    metric.update_state([0, 1], np.array([[0.9, 0.1], [0.3, 0.7]], "float32"))
    assert np.isfinite(float(metric.result()))
    metric.update_state([0], np.array([[2.0, -1.0]], "float32"))  # logits
    assert np.isnan(float(metric.result()))
    metric.reset_state()
    metric.update_state([0], np.array([[0.9, 0.1]], "float32"))
    np.testing.assert_allclose(float(metric.result()), 0.1, atol=1e-6)


@pytest.mark.parametrize("labels", [[0, 2], [0, -1], [0, 1.5]], ids=["too_big", "neg", "frac"])
def test_bad_class_ids_make_the_metrics_nan(labels):
    probs = np.array([[0.9, 0.1], [0.3, 0.7]], "float32")
    for metric in (
        klr.ExpectedCalibrationError(),
        klr.MaximumCalibrationError(),
        klr.BrierScore(),
    ):
        metric.update_state(np.array(labels), probs)
        assert np.isnan(float(metric.result())), type(metric).__name__


def test_half_precision_probabilities_are_accepted(rng):
    # bfloat16 rounding moves a softmax row's sum by up to ~1e-2: still probabilities.
    logits = rng.standard_normal((64, 10)).astype("float32")
    probs = keras.ops.cast(keras.ops.softmax(logits), "bfloat16")
    labels = rng.integers(0, 10, 64)
    metric = klr.ExpectedCalibrationError()
    metric.update_state(labels, probs)
    expected = oracle.ece_loop(labels, keras.ops.convert_to_numpy(probs).astype(np.float64), 15)
    np.testing.assert_allclose(float(metric.result()), expected, atol=1e-6)


def test_column_labels_and_weights_as_keras_metrics_accept_them(rng):
    probs = oracle.softmax(rng.standard_normal((50, K)))
    labels = rng.integers(0, K, 50)
    weights = rng.integers(0, 4, 50).astype(np.float64)
    expected_ece = oracle.ece_loop(labels, probs, 15, weights)
    expected_brier = oracle.brier_loop(labels, probs, weights)
    ece, brier = klr.ExpectedCalibrationError(), klr.BrierScore()
    ece.update_state(labels[:, None], probs, sample_weight=weights[:, None])
    brier.update_state(labels[:, None], probs, sample_weight=weights[:, None])
    np.testing.assert_allclose(float(ece.result()), expected_ece, rtol=1e-6)
    np.testing.assert_allclose(float(brier.result()), expected_brier, rtol=1e-6)
    # Keras' own metric takes the same shapes.
    keras.metrics.SparseCategoricalAccuracy().update_state(
        labels[:, None], probs, sample_weight=weights[:, None]
    )


def test_column_weights_in_evaluate(rng):
    x, y = _data(rng)
    weights = rng.integers(0, 3, len(y)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(K, activation="softmax")])
    model.compile(
        optimizer="sgd",
        loss="sparse_categorical_crossentropy",
        weighted_metrics=[klr.ExpectedCalibrationError(), klr.BrierScore()],
    )
    scores = model.evaluate(
        x, y[:, None], sample_weight=weights[:, None], batch_size=32, verbose=0, return_dict=True
    )
    probs = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).astype(np.float64)
    np.testing.assert_allclose(scores["ece"], oracle.ece_loop(y, probs, 15, weights), atol=2e-6)
    np.testing.assert_allclose(
        scores["brier_score"], oracle.brier_loop(y, probs, weights), atol=2e-6
    )


def _padded_sequences(rng, batch=24, steps=7, vocab=9):
    tokens = rng.integers(1, vocab, (batch, steps))
    lengths = rng.integers(2, steps + 1, batch)
    for i, length in enumerate(lengths):
        tokens[i, length:] = 0  # padding
    labels = rng.integers(0, K, (batch, steps))
    return tokens, labels, tokens != 0


@pytest.mark.parametrize("masking", ["embedding_mask_zero", "masking_layer"])
def test_masked_timesteps_are_not_counted(rng, masking):
    tokens, labels, keep = _padded_sequences(rng)
    keras.utils.set_random_seed(0)
    if masking == "embedding_mask_zero":
        inputs = keras.Input((tokens.shape[1],))
        hidden = keras.layers.Embedding(9, 5, mask_zero=True)(inputs)
        x = tokens
    else:
        inputs = keras.Input((tokens.shape[1], 1))
        hidden = keras.layers.Masking(mask_value=0.0)(inputs)
        x = tokens[..., None].astype("float32")
    outputs = keras.layers.Dense(K, activation="softmax")(keras.layers.Dense(8)(hidden))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="sgd",
        loss="sparse_categorical_crossentropy",
        metrics=[
            klr.ExpectedCalibrationError(),
            klr.BrierScore(),
            "accuracy",
            klr.CalibrationError(norm="l2", name="rms"),
            klr.KSCalibrationError(name="ks"),
        ],
    )
    scores = model.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    probs = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).astype(np.float64)
    kept_labels, kept_probs = labels[keep], probs[keep]
    expected_ece = oracle.ece_loop(kept_labels, kept_probs, 15)
    counted_all = oracle.ece_loop(labels.reshape(-1), probs.reshape(-1, K), 15)
    assert abs(expected_ece - counted_all) > 1e-4  # the test can tell the two apart
    np.testing.assert_allclose(scores["ece"], expected_ece, atol=2e-6)
    np.testing.assert_allclose(
        scores["brier_score"], oracle.brier_loop(kept_labels, kept_probs), atol=2e-6
    )
    # The histogram metrics read the same mask (15 bins divide the 3000 cells: exact RMS).
    expected_rms = oracle.binned_error_loop(
        kept_labels, kept_probs, 15, "l2", "equal_width", False, "top_label"
    )
    np.testing.assert_allclose(scores["rms"], expected_rms, atol=2e-6)
    expected_ks = oracle.ks_loop(kept_labels, kept_probs)
    cells = np.minimum((kept_probs.max(-1) * 3000).astype(int), 2999)
    largest_cell = np.bincount(cells).max() / len(kept_labels)
    assert expected_ks - largest_cell - 2e-6 <= scores["ks"] <= expected_ks + 2e-6
    # Keras' own accuracy counts the same time steps.
    accuracy = np.mean(kept_probs.argmax(-1) == kept_labels)
    np.testing.assert_allclose(scores["accuracy"], accuracy, atol=1e-6)


def test_metrics_and_losses_do_not_read_values_on_the_host_by_default(monkeypatch, rng):
    # Keras' torch backend runs fit eagerly: a host copy per step would be on the hot path.
    probs = oracle.softmax(rng.standard_normal((16, K))).astype("float32")
    labels = rng.integers(0, K, 16)
    tensors = keras.ops.convert_to_tensor(probs), keras.ops.convert_to_tensor(labels)

    def forbidden(*args, **kwargs):
        raise AssertionError("host read on the per-step path")

    monkeypatch.setattr(keras.ops, "convert_to_numpy", forbidden)
    for metric in _metrics(from_logits=False):
        metric.update_state(tensors[1], tensors[0])
    for loss in (
        klr.SparseLabelRelaxation(0.1),
        klr.LabelRelaxation(0.1),
        klr.SparseLabelSmoothing(0.1),
        klr.SparseConfidencePenalty(1.0),
        klr.SparseCategoricalFocalCrossentropy(gamma=2.0),
    ):
        y = (
            keras.ops.one_hot(tensors[1], K)
            if isinstance(loss, klr.LabelRelaxation)
            else tensors[1]
        )
        loss(y, tensors[0])
    with pytest.raises(AssertionError, match="host read"):
        klr.ExpectedCalibrationError(validate_args=True).update_state(tensors[1], tensors[0])
