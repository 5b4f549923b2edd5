"""The losses inside model.compile / fit on real data (scikit-learn's digits)."""

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from keras_label_relaxation.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits()
    return x.reshape(len(x), -1)[:512], y[:512]


def _model():
    return keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "one_hot"])
def test_fit_lowers_label_relaxation_loss_on_digits(digits, sparse):
    x, y = digits
    keras.utils.set_random_seed(0)
    model = _model()
    loss = (
        klr.SparseLabelRelaxation(0.1, from_logits=True)
        if sparse
        else klr.LabelRelaxation(0.1, from_logits=True)
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=loss, metrics=["accuracy"]
    )
    targets = y if sparse else np.eye(10, dtype="float32")[y]
    history = model.fit(x, targets, batch_size=64, epochs=5, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert history.history["accuracy"][-1] > 0.8


def test_fit_with_soft_targets_lowers_loss(digits, rng):
    x, y = digits
    keras.utils.set_random_seed(0)
    # MixUp-style targets: each row mixes its label with a random other one.
    lam = rng.uniform(0.6, 1.0, (len(y), 1)).astype("float32")
    q = (
        lam * np.eye(10, dtype="float32")[y]
        + (1 - lam) * np.eye(10, dtype="float32")[rng.integers(0, 10, len(y))]
    )
    model = _model()
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=klr.LabelRelaxation(0.1, from_logits=True),
    )
    losses = model.fit(x, q, batch_size=64, epochs=5, verbose=0).history["loss"]
    assert losses[-1] < 0.6 * losses[0]


def test_mixed_float16_training_moves(digits, restore_policy):
    # A float16 loss under mixed_float16 makes the loss-scale optimizer skip every step;
    # ours computes in float32 even when asked for float16, so the weights move.
    x, y = digits
    keras.config.set_dtype_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, dtype="float32"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=klr.SparseLabelRelaxation(0.1, from_logits=True, dtype="float16"),
    )
    before = [w.copy() for w in model.get_weights()]
    losses = model.fit(x, y, batch_size=64, epochs=3, verbose=0).history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize(
    "loss",
    [
        klr.SparseLabelRelaxation(0.1, from_logits=True),
        klr.SparseLabelSmoothing(0.1, from_logits=True),
        klr.SparseConfidencePenalty(1.0, from_logits=True),
        klr.SparseCategoricalFocalCrossentropy(1.0, 2.0, from_logits=True),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_an_out_of_range_label_makes_the_compiled_loss_nan(digits, loss):
    # Inside the compiled evaluate step no host check runs: the guard is a tensor op.
    x, y = digits
    model = _model()
    model.compile(optimizer="sgd", loss=loss)
    good = model.evaluate(x[:64], y[:64], batch_size=64, verbose=0)
    bad_labels = y[:64].copy()
    bad_labels[5] = 10  # K = 10 classes: ids are 0..9
    bad = model.evaluate(x[:64], bad_labels, batch_size=64, verbose=0)
    assert np.isfinite(good) and np.isnan(bad)


def test_a_soft_target_row_off_the_simplex_makes_the_compiled_loss_nan(digits):
    x, y = digits
    targets = np.eye(10, dtype="float32")[y[:64]]
    model = _model()
    model.compile(optimizer="sgd", loss=klr.LabelRelaxation(0.1, from_logits=True))
    assert np.isfinite(model.evaluate(x[:64], targets, batch_size=64, verbose=0))
    targets[3] *= 0.5  # sums to 0.5
    assert np.isnan(model.evaluate(x[:64], targets, batch_size=64, verbose=0))
