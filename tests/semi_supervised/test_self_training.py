"""Credal pseudo-labels and SelfTraining's step against NumPy constructions of the same quantities.

The references follow the authors' code (github.com/julilien/CSSL, cssl.py) written out
as loops: alignment ratio with 1e-6 on both priors, alpha = 1 - max of the aligned
prediction, a FIFO window of batch means; the step's loss is checked with a learning
rate of 0 so that the model is fixed.
"""

import keras
import numpy as np
import pytest

from keras_label_relaxation import semi_supervised
from tests import oracle

K = 4


def _credal_loop(logits, model_prior, data_prior):
    ks, alphas = [], []
    for row in np.asarray(logits, np.float64):
        p = np.exp(row - row.max())
        p /= p.sum()
        aligned = [p[c] * (1e-6 + data_prior[c]) / (1e-6 + model_prior[c]) for c in range(len(p))]
        aligned = np.array(aligned) / sum(aligned)
        ks.append(int(np.argmax(p)))
        alphas.append(min(max(1.0 - max(aligned), 1e-6), 1 - 1e-6))
    return np.array(ks), np.array(alphas)


@pytest.mark.parametrize("data_prior", [None, [0.1, 0.2, 0.3, 0.4]])
def test_credal_targets_equal_the_construction(rng, data_prior):
    logits = 3.0 * rng.standard_normal((50, K))
    model_prior = rng.dirichlet(np.ones(K))
    k, alpha = semi_supervised.credal_targets(logits, model_prior, data_prior)
    prior = np.full(K, 1 / K) if data_prior is None else np.array(data_prior)
    expected_k, expected_alpha = _credal_loop(logits, model_prior, prior)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(k), expected_k)
    alpha = keras.ops.convert_to_numpy(alpha)
    # 1 - max: absolute error of the compute dtype (JAX without x64 computes in float32).
    np.testing.assert_allclose(
        alpha, expected_alpha, rtol=0, atol=1e-12 if alpha.dtype == np.float64 else 5e-7
    )
    # The aligned arg-max need not be k: alpha comes from the aligned prediction, k does not.
    assert np.all((expected_alpha > 0) & (expected_alpha < 1))


def test_a_saturated_prediction_keeps_alpha_inside_the_open_interval():
    k, alpha = semi_supervised.credal_targets(np.array([[80.0, 0.0, 0.0, 0.0]]), np.full(K, 0.25))
    assert int(keras.ops.convert_to_numpy(k)[0]) == 0
    assert float(keras.ops.convert_to_numpy(alpha)[0]) == pytest.approx(1e-6)


def test_hard_pseudo_labels_equal_the_construction(rng):
    logits = 4.0 * rng.standard_normal((40, K))
    k, mask = semi_supervised.hard_pseudo_labels(logits, 0.9)
    p = oracle.softmax(logits)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(k), p.argmax(-1))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), p.max(-1) >= 0.9)


def _setup(method, rng, learning_rate=0.0, window=3):
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((6,)), keras.layers.Dense(K)])
    model = semi_supervised.SelfTraining(
        classifier,
        method=method,
        strong=keras.layers.Rescaling(0.4),  # a deterministic "strong" view: other logits
        threshold=0.6,
        alignment_window=window,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x_l = rng.standard_normal((8, 6)).astype("float32")
    y_l = rng.integers(0, K, 8)
    x_u = 3.0 * rng.standard_normal((40, 6)).astype("float32")
    return model, classifier, x_l, y_l, x_u


@pytest.mark.parametrize("method", ["credal", "hard", "supervised"])
def test_one_step_loss_equals_the_construction(rng, method):
    model, classifier, x_l, y_l, x_u = _setup(method, rng)
    batches = semi_supervised.SemiSupervisedBatches(
        x_l, y_l, x_u, batch_size=8, unlabelled_ratio=2, steps_per_epoch=1, seed=1
    )
    (xb_l, xb_u), yb = batches[0]
    loss, accuracy_logged = model.train_on_batch((xb_l, xb_u), yb)
    weak = classifier.predict(xb_u, verbose=0)
    strong = oracle.softmax(classifier.predict(0.4 * xb_u, verbose=0))
    supervised = oracle.cross_entropy(yb, oracle.softmax(classifier.predict(xb_l, verbose=0)))
    p = oracle.softmax(weak)
    if method == "credal":  # the window starts uniform, so the first step's alignment is void
        k, alpha = _credal_loop(weak, np.full(K, 1 / K), np.full(K, 1 / K))
        unlabelled = oracle.label_relaxation(k, strong, alpha).mean()
        assert unlabelled > 0.01  # the strong view is outside some credal sets
    elif method == "hard":
        mask = p.max(-1) >= 0.6
        assert 0 < mask.sum() < len(mask)
        unlabelled = np.mean(mask * oracle.cross_entropy(p.argmax(-1), strong))
    else:
        unlabelled = 0.0
    assert loss == pytest.approx(supervised.mean() + unlabelled, rel=1e-5)
    accuracy = np.mean(classifier.predict(xb_l, verbose=0).argmax(-1) == yb)
    assert accuracy_logged == pytest.approx(accuracy)


def test_the_alignment_window_is_a_fifo_of_batch_means(rng):
    model, classifier, x_l, y_l, x_u = _setup("credal", rng, window=3)
    batches = semi_supervised.SemiSupervisedBatches(
        x_l, y_l, x_u, batch_size=4, unlabelled_ratio=2, steps_per_epoch=5, seed=2
    )
    means = [
        oracle.softmax(classifier.predict(batches[i][0][1], verbose=0)).mean(0) for i in range(5)
    ]
    for i in range(5):
        model.train_on_batch(*batches[i])
    window = keras.ops.convert_to_numpy(model.model_prior_window)
    np.testing.assert_allclose(window, np.stack(means[-3:]), rtol=1e-5)


def test_training_moves_and_the_model_saves(rng, tmp_path):
    model, classifier, x_l, y_l, x_u = _setup("credal", rng, learning_rate=0.1)
    batches = semi_supervised.SemiSupervisedBatches(
        x_l, y_l, x_u, batch_size=8, unlabelled_ratio=2, steps_per_epoch=10, seed=3
    )
    history = model.fit(batches, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    logs = model.evaluate(x_l, y_l, verbose=0, return_dict=True)  # plain inputs: the classifier
    assert logs["accuracy"] == pytest.approx(
        np.mean(classifier.predict(x_l, verbose=0).argmax(-1) == y_l)
    )
    path = tmp_path / "self_training.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, semi_supervised.SelfTraining) and loaded.method == "credal"
    np.testing.assert_allclose(loaded.predict(x_l, verbose=0), model.predict(x_l, verbose=0))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.model_prior_window),
        keras.ops.convert_to_numpy(model.model_prior_window),
    )


def test_batches_cycle_deterministically_and_check_sizes(rng):
    x_l, y_l, x_u = rng.standard_normal((5, 2)), np.arange(5), rng.standard_normal((30, 2))
    one = semi_supervised.SemiSupervisedBatches(x_l, y_l, x_u, 4, 3, steps_per_epoch=5, seed=7)
    two = semi_supervised.SemiSupervisedBatches(x_l, y_l, x_u, 4, 3, steps_per_epoch=5, seed=7)
    drawn = [one[i] for i in range(5)]
    for (a, b), ((c, d), e) in zip([(x, y) for x, y in drawn], [two[i] for i in range(5)]):
        np.testing.assert_array_equal(a[0], c)
        np.testing.assert_array_equal(a[1], d)
        np.testing.assert_array_equal(b, e)
    assert drawn[0][0][0].shape == (4, 2) and drawn[0][0][1].shape == (12, 2)
    labels = np.concatenate([y for _, y in drawn])
    assert np.bincount(labels, minlength=5).tolist() == [4] * 5  # 20 draws: 4 permutations
    with pytest.raises(ValueError, match="unlabelled batch of 36"):
        semi_supervised.SemiSupervisedBatches(x_l, y_l, x_u, 4, 9)
    with pytest.raises(ValueError, match="method"):
        semi_supervised.SelfTraining(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]),
                                     method="fixmatch")  # fmt: skip


def _documented_draws(seed, epoch, n_labelled, n_unlabelled, steps, b, u):
    """The docstring's draws of ``epoch``: ``[(labelled ids, unlabelled ids)]`` per step."""
    rng = np.random.default_rng([seed, epoch])

    def cycled(n, count):
        ids = []
        while len(ids) < count:
            ids.extend(rng.permutation(n).tolist())
        return ids[:count]

    labelled, unlabelled = cycled(n_labelled, steps * b), cycled(n_unlabelled, steps * u)
    return [(labelled[i * b : (i + 1) * b], unlabelled[i * u : (i + 1) * u]) for i in range(steps)]


class _Recorder(keras.layers.Layer):
    """Passes its input through; in training steps, logs the ids in its first column."""

    def __init__(self, record, **kwargs):
        super().__init__(**kwargs)
        self.record = record  # a function: a list attribute would be copied (tracked)

    def call(self, inputs, training=None):
        if training:  # Keras' symbolic build runs with training=False
            self.record(keras.ops.convert_to_numpy(inputs[:, 0]).round().astype(int).tolist())
        return inputs


class _PerEpoch(keras.callbacks.Callback):
    def __init__(self, log):
        super().__init__()
        self.log, self.epochs = log, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.log.clear()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs[epoch] = list(self.log)


def test_fit_consumes_the_documented_draws_of_each_epoch():
    n_l, n_u, b, mu, steps, seed = 6, 40, 2, 3, 4, 11
    log = []
    classifier = keras.Sequential([keras.Input((2,)), _Recorder(log.append), keras.layers.Dense(K)])
    model = semi_supervised.SelfTraining(classifier, method="hard", threshold=0.6)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,  # the recorder sees the steps' concrete inputs
    )
    # Every row carries its id: labelled i is (i, 0.5), unlabelled j is (1000 + j, 0.5).
    x_l = np.stack([np.arange(n_l), np.full(n_l, 0.5)], axis=1)
    x_u = np.stack([1000 + np.arange(n_u), np.full(n_u, 0.5)], axis=1)
    batches = semi_supervised.SemiSupervisedBatches(
        x_l, np.arange(n_l) % K, x_u, b, mu, steps_per_epoch=steps, seed=seed
    )

    def consumed(epochs):
        # One classifier pass per step: weak labelled, weak unlabelled, strong unlabelled rows.
        return {
            e: [(ids[:b], [i - 1000 for i in ids[b : b + mu * b]]) for ids in steps_ids]
            for e, steps_ids in epochs.items()
        }

    def documented(epoch):
        return _documented_draws(seed, epoch, n_l, n_u, steps, b, mu * b)

    per_epoch = _PerEpoch(log)
    model.fit(batches, epochs=3, verbose=0, callbacks=[per_epoch])
    assert consumed(per_epoch.epochs) == {e: documented(e) for e in range(3)}
    # Resumed: Keras' epoch count, whatever this data set served before.
    per_epoch = _PerEpoch(log)
    model.fit(batches, initial_epoch=3, epochs=5, verbose=0, callbacks=[per_epoch])
    assert consumed(per_epoch.epochs) == {e: documented(e) for e in (3, 4)}
    # Keras' shuffle permutes the steps of an epoch, not what is drawn.
    per_epoch = _PerEpoch(log)
    model.fit(batches, epochs=2, shuffle=True, verbose=0, callbacks=[per_epoch])
    for epoch, steps_ids in consumed(per_epoch.epochs).items():
        assert sorted(steps_ids) == sorted(documented(epoch)), epoch
    with pytest.raises(ValueError, match="`epoch`"):
        batches.set_epoch(-1)
