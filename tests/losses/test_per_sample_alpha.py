"""One alpha per example in model.fit/evaluate (PerSampleAlpha), against float64 per-example losses.

A learning rate of 0 keeps the model fixed during ``fit``, so the epoch loss and
metrics of ``fit`` are those of known predictions; the reference is the mean of
the explicit per-example KL projections in ``tests/oracle.py``.
"""

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from tests import oracle

N, D, K = 96, 5, 4


@pytest.fixture
def data(rng):
    x = rng.standard_normal((N, D)).astype("float32")
    y = rng.integers(0, K, N)
    alpha = rng.uniform(0.02, 0.6, N).astype("float32")
    return x, y, alpha


def _model(loss, seed=0, metrics=()):
    keras.utils.set_random_seed(seed)
    inner = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])
    model = klr.PerSampleAlpha(inner)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=loss, metrics=list(metrics)
    )
    return model


def _expected(model, x, y, alpha, weights=None):
    per_example = oracle.label_relaxation(y, oracle.softmax(model.predict(x, verbose=0)), alpha)
    weights = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)
    return float(np.sum(weights * per_example) / len(y))  # Keras' sum_over_batch_size


def test_fit_and_evaluate_use_each_examples_alpha(data):
    x, y, alpha = data
    model = _model(
        klr.SparseLabelRelaxation(alpha="per_sample", from_logits=True),
        metrics=["accuracy", klr.ExpectedCalibrationError(from_logits=True)],
    )
    targets = klr.alpha_targets(y, alpha)
    history = model.fit(x, targets, batch_size=N, epochs=1, shuffle=False, verbose=0)
    logs = model.evaluate(x, targets, batch_size=32, return_dict=True, verbose=0)
    expected = _expected(model, x, y, alpha)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    # Metrics see the plain labels: accuracy and ECE as without per-sample alpha.
    probs = oracle.softmax(model.predict(x, verbose=0))
    assert logs["accuracy"] == pytest.approx(np.mean(probs.argmax(-1) == y), abs=1e-6)
    assert logs["ece"] == pytest.approx(oracle.ece_loop(y, probs, 15), abs=1e-5)
    # Not the loss of one shared alpha (the data's alphas differ enough to tell).
    mean_alpha = oracle.label_relaxation(y, probs, float(np.mean(alpha))).mean()
    assert abs(expected - mean_alpha) > 1e-3


@pytest.mark.parametrize("kind", ["one_hot", "soft", "binary"])
def test_dense_soft_and_binary_targets(data, rng, kind):
    x, y, alpha = data
    if kind == "binary":
        target = rng.integers(0, 2, (N, K)).astype("float32")
        loss = klr.BinaryLabelRelaxation(alpha="per_sample", from_logits=True)
    else:
        target = np.eye(K, dtype="float32")[y]
        if kind == "soft":
            lam = rng.uniform(0.5, 1.0, (N, 1)).astype("float32")
            target = lam * target + (1 - lam) * np.eye(K, dtype="float32")[rng.integers(0, K, N)]
        loss = klr.LabelRelaxation(alpha="per_sample", from_logits=True)
    model = _model(loss)
    logs = model.evaluate(x, klr.alpha_targets(target, alpha), return_dict=True, verbose=0)
    logits = model.predict(x, verbose=0).astype(np.float64)
    if kind == "binary":
        p = 1.0 / (1.0 + np.exp(-logits))
        per_example = [
            oracle.bernoulli_relaxation(t[None], q[None], a)[0] for t, q, a in zip(target, p, alpha)
        ]
    elif kind == "soft":
        probs = oracle.softmax(logits)
        per_example = [
            oracle.kl(oracle.project_soft_numerically(q, p, a), p)
            for q, p, a in zip(target, probs, alpha)
        ]
    else:
        per_example = oracle.label_relaxation(y, oracle.softmax(logits), alpha)
    assert logs["loss"] == pytest.approx(np.mean(per_example), rel=1e-4)


def test_sample_weight_and_column_shapes(data, rng):
    x, y, alpha = data
    weights = rng.uniform(0.0, 2.0, N).astype("float32")
    model = _model(klr.SparseLabelRelaxation(alpha="per_sample", from_logits=True))
    targets = klr.alpha_targets(y[:, None], alpha)  # (N, 1) ids, as Keras' sparse losses take
    logs = model.evaluate(
        x, targets, sample_weight=weights[:, None], batch_size=N, return_dict=True, verbose=0
    )
    assert logs["loss"] == pytest.approx(_expected(model, x, y, alpha, weights), rel=1e-5)


def test_tf_data_and_generator_input(data):
    x, y, alpha = data
    model = _model(klr.SparseLabelRelaxation(alpha="per_sample", from_logits=True))
    expected = _expected(model, x, y, alpha)

    def batches():
        for start in range(0, N, 32):
            stop = start + 32
            yield x[start:stop], {"target": y[start:stop], "alpha": alpha[start:stop]}

    history = model.fit(batches(), epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        dataset = tf.data.Dataset.from_tensor_slices((x, {"target": y, "alpha": alpha})).batch(32)
        assert model.evaluate(dataset, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_one_shared_alpha_trains_exactly_as_the_plain_loss(data):
    x, y, _ = data
    per_sample = _model(klr.SparseLabelRelaxation(alpha="per_sample", from_logits=True))
    per_sample.optimizer.learning_rate.assign(0.5)
    plain = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])
    plain.set_weights(per_sample.get_weights())
    plain.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.5),
        loss=klr.SparseLabelRelaxation(alpha=0.25, from_logits=True),
    )
    targets = klr.alpha_targets(y, np.full(N, 0.25))
    one = per_sample.fit(x, targets, batch_size=16, epochs=2, shuffle=False, verbose=0)
    two = plain.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert one.history["loss"] == pytest.approx(two.history["loss"], rel=1e-6)
    for a, b in zip(per_sample.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert one.history["loss"][-1] < one.history["loss"][0]


def test_save_and_load_in_safe_mode(data, tmp_path):
    x, y, alpha = data
    model = _model(klr.SparseLabelRelaxation(alpha="per_sample", from_logits=True))
    targets = klr.alpha_targets(y, alpha)
    before = model.evaluate(x, targets, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, klr.PerSampleAlpha)
    assert loaded.loss.get_config()["alpha"] == "per_sample"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.evaluate(x, targets, verbose=0) == pytest.approx(before, rel=1e-6)


def test_alpha_outside_the_open_interval(data):
    x, y, alpha = data
    with pytest.raises(ValueError, match=r"`alpha`.*\(0, 1\).*1\.0.*indices \[3\]"):
        klr.alpha_targets(y, np.where(np.arange(N) == 3, 1.0, alpha))
    with pytest.raises(ValueError, match=r"one value per example"):
        klr.alpha_targets(y, alpha[:-1])
    # Past the helper, inside compiled steps: that example's loss is NaN, never clamped.
    model = _model(klr.SparseLabelRelaxation(alpha="per_sample", from_logits=True))
    bad = {"target": y, "alpha": np.where(np.arange(N) == 3, 0.0, alpha).astype("float32")}
    assert np.isnan(model.evaluate(x, bad, batch_size=N, verbose=0))
    good = {"target": y, "alpha": alpha}
    assert np.isfinite(model.evaluate(x, good, batch_size=N, verbose=0))
    # validate_args: the eager functional call names the argument.
    loss = klr.SparseLabelRelaxation(alpha="per_sample", validate_args=True, from_logits=True)
    packed = np.stack([y, bad["alpha"]], axis=-1).astype("float32")
    with pytest.raises(ValueError, match="alpha"):
        loss(packed, model.predict(x, verbose=0))


def test_wrong_structures_are_refused(data):
    x, y, alpha = data
    model = _model(klr.SparseLabelRelaxation(alpha="per_sample", from_logits=True))
    with pytest.raises(ValueError, match=r"y = \{'target'"):
        model.evaluate(x, y, verbose=0)
    # A per-sample loss without packed targets names what it needs.
    plain = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])
    plain.compile(loss=klr.SparseLabelRelaxation(alpha="per_sample", from_logits=True))
    with pytest.raises(ValueError, match="per_sample"):
        plain.evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"alpha=.per_sampel."):
        klr.LabelRelaxation(alpha="per_sampel")
