"""alpha schedules: values against their formulas, and a scheduled loss inside fit.

With a learning rate of 0 the model is fixed, so each epoch's loss in ``History``
must equal the float64 oracle loss at that epoch's scheduled alpha.
"""

import math

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from tests import oracle

N, D, K = 64, 5, 4


@pytest.mark.parametrize(
    "schedule, formula",
    [
        (klr.ConstantAlpha(0.15), lambda e: 0.15),
        (klr.LinearAlpha(0.4, 0.1, epochs=6), lambda e: 0.4 - 0.3 * min(e / 6, 1)),
        (
            klr.CosineAlpha(0.4, 0.05, epochs=5),
            lambda e: 0.05 + 0.35 * (1 + math.cos(math.pi * min(e / 5, 1))) / 2,
        ),
        (klr.StepAlpha([2, 5], [0.3, 0.2, 0.1]), lambda e: 0.3 if e < 2 else 0.2 if e < 5 else 0.1),
        (
            klr.LinearAlpha(0.4, 0.1, epochs=4, warmup_epochs=2, warmup_alpha=0.02),
            lambda e: 0.02 + (0.4 - 0.02) * e / 2 if e < 2 else 0.4 - 0.3 * min((e - 2) / 4, 1),
        ),
    ],
)
def test_schedules_follow_their_formulas(schedule, formula):
    for epoch in range(12):
        assert schedule(epoch) == pytest.approx(formula(epoch), abs=1e-12), epoch
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(restored) is type(schedule)
    assert [restored(e) for e in range(12)] == [schedule(e) for e in range(12)]


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: klr.LinearAlpha(0.0, 0.1, epochs=3), "start"),
        (lambda: klr.CosineAlpha(0.2, 1.0, epochs=3), "end"),
        (lambda: klr.LinearAlpha(0.2, 0.1, epochs=0), "epochs"),
        (lambda: klr.StepAlpha([3, 2], [0.1, 0.2, 0.3]), "boundaries"),
        (lambda: klr.StepAlpha([3], [0.1, 1.5]), "values"),
        (lambda: klr.ConstantAlpha(0.1, warmup_epochs=2), "warmup_alpha"),
        (lambda: klr.SparseLabelRelaxation(alpha="cosine"), "alpha"),
    ],
)
def test_bad_schedule_arguments_are_named(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


@pytest.fixture
def data(rng):
    x = rng.standard_normal((N, D)).astype("float32")
    y = rng.integers(0, K, N)
    return x, y


def _compiled(schedule, with_state=True, learning_rate=0.0, seed=0):
    keras.utils.set_random_seed(seed)
    loss = klr.SparseLabelRelaxation(alpha=schedule, from_logits=True)
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss=loss,
        metrics=["accuracy"] + ([loss.alpha_state] if with_state else []),
    )
    return model, loss


class _CountCalls(keras.callbacks.Callback):
    """Counts the Python calls of the loss per epoch (a traced step calls it once)."""

    def __init__(self, loss):
        super().__init__()
        self.calls, self.per_epoch = [0], []
        original = loss.call

        def counting(*args):
            self.calls[0] += 1
            return original(*args)

        loss.call = counting

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append(self.calls[0])


def test_fit_uses_each_epochs_alpha_without_recompiling(data):
    x, y = data
    schedule = klr.CosineAlpha(0.5, 0.05, epochs=3)
    model, loss = _compiled(schedule)
    counter = _CountCalls(loss)
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=4,
        validation_data=(x, y),
        shuffle=False,
        verbose=0,
        callbacks=[klr.AlphaScheduler(), counter],
    )
    probs = oracle.softmax(model.predict(x, verbose=0))
    alphas = [schedule(e) for e in range(4)]
    expected = [float(oracle.label_relaxation(y, probs, a).mean()) for a in alphas]
    assert history.history["alpha"] == pytest.approx(alphas, rel=1e-6)
    assert history.history["val_alpha"] == pytest.approx(alphas, rel=1e-6)
    assert history.history["loss"] == pytest.approx(expected, rel=1e-5)
    assert history.history["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert len(set(np.round(expected, 6))) == 4  # the epochs' losses do differ
    if keras.backend.backend() != "torch":  # compiled steps: traced in epoch 1, never again
        assert counter.per_epoch[1:] == [counter.per_epoch[0]] * 3


def test_scheduled_training_moves_and_survives_save_and_load(data, tmp_path):
    x, y = data
    model, loss = _compiled(klr.StepAlpha([1], [0.3, 0.1]), learning_rate=0.5)
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[klr.AlphaScheduler()])
    assert history.history["loss"][2] < history.history["loss"][1]  # same alpha, trained further
    path = tmp_path / "scheduled.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    # The last epoch kept, and one state object: the loss' is the compiled metric.
    state = loaded.loss.alpha_state
    assert state.epoch == 2 and np.isnan(float(state.result()))  # NaN until a scheduler sets it
    probs = oracle.softmax(loaded.predict(x, verbose=0))
    expected = float(oracle.label_relaxation(y, probs, 0.1).mean())
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True, callbacks=[klr.AlphaScheduler()])
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["alpha"] == pytest.approx(0.1)
    assert id(state.alpha) in {id(v) for v in loaded.metrics_variables}
    resumed = loaded.fit(x, y, epochs=1, verbose=0, callbacks=[klr.AlphaScheduler()])
    assert resumed.history["alpha"] == pytest.approx([0.3])  # epoch 0 of the new fit


def test_a_scheduled_loss_without_its_scheduler_or_state_is_loud(data):
    x, y = data
    model, _ = _compiled(klr.LinearAlpha(0.3, 0.1, epochs=2))
    # No AlphaScheduler: alpha was never set, so the loss is NaN, not a finite guess.
    assert np.isnan(model.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    model, _ = _compiled(klr.LinearAlpha(0.3, 0.1, epochs=2), with_state=False)
    with pytest.raises(ValueError, match=r"metrics=\[\.\.\., \*loss\.schedule_states\]"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[klr.AlphaScheduler()])
    plain = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])
    plain.compile(loss=klr.SparseLabelRelaxation(0.1, from_logits=True))
    with pytest.raises(ValueError, match="no alpha schedule"):
        plain.fit(x, y, epochs=1, verbose=0, callbacks=[klr.AlphaScheduler()])


def test_set_epoch_outside_fit(data):
    x, y = data
    model, loss = _compiled(klr.LinearAlpha(0.4, 0.2, epochs=2))
    assert loss.alpha_state.set_epoch(1) == pytest.approx(0.3)
    probs = oracle.softmax(model.predict(x, verbose=0))
    expected = float(oracle.label_relaxation(y, probs, 0.3).mean())
    assert model.evaluate(x, y, verbose=0) == pytest.approx(
        [expected, np.mean(probs.argmax(-1) == y), 0.3], rel=1e-5
    )
    # Held through Keras' metric resets, until a scheduled fit takes over (NaN after it).
    assert model.evaluate(x, y, verbose=0)[2] == pytest.approx(0.3)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[klr.AlphaScheduler()])
    assert np.isnan(model.evaluate(x, y, verbose=0)[0])


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorBoard event files")
def test_alpha_reaches_tensorboard(data, tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    import tensorflow as tf

    x, y = data
    schedule = klr.LinearAlpha(0.3, 0.1, epochs=2)
    model, _ = _compiled(schedule)
    callbacks = [klr.AlphaScheduler(), keras.callbacks.TensorBoard(log_dir=str(tmp_path))]
    model.fit(x, y, epochs=3, verbose=0, callbacks=callbacks)
    events = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    events.Reload()
    if "epoch_alpha" in events.Tags()["tensors"]:
        logged = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("epoch_alpha")]
    else:
        logged = [e.value for e in events.Scalars("epoch_alpha")]
    assert logged == pytest.approx([schedule(e) for e in range(3)], rel=1e-6)


def _oracle_loss(model, x, y, alpha):
    probs = oracle.softmax(model.predict(x, verbose=0))
    return float(oracle.label_relaxation(y, probs, alpha).mean())


def test_a_second_fit_without_the_scheduler_is_nan_not_the_last_alpha(data):
    x, y = data
    model, _ = _compiled(klr.LinearAlpha(0.4, 0.2, epochs=2))
    first = model.fit(x, y, epochs=2, verbose=0, callbacks=[klr.AlphaScheduler()])
    assert first.history["alpha"] == pytest.approx([0.4, 0.3])
    weights = model.get_weights()
    # Resumed without the callback: the alpha of epoch 2 was set by nobody.
    resumed = model.fit(x, y, initial_epoch=2, epochs=3, validation_data=(x, y), verbose=0)
    for key in ("loss", "alpha", "val_loss", "val_alpha"):
        assert np.isnan(resumed.history[key][0]), key
    assert np.isnan(model.evaluate(x, y, verbose=0)[0])
    # Compiled again (TensorFlow builds the new compile metrics only in the first step).
    model.compile(
        optimizer=keras.optimizers.SGD(0.0), loss=model.loss, metrics=[model.loss.alpha_state]
    )
    assert np.isnan(model.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    # With the scheduler again (and the weights before the NaN steps): the schedule at the
    # resumed epochs, the oracle's loss.
    model.set_weights(weights)
    resumed = model.fit(
        x, y, initial_epoch=1, epochs=2, verbose=0, callbacks=[klr.AlphaScheduler()]
    )
    assert resumed.history["alpha"] == pytest.approx([0.3])
    logs = model.evaluate(x, y, verbose=0, return_dict=True, callbacks=[klr.AlphaScheduler()])
    assert logs["alpha"] == pytest.approx(0.3)
    assert logs["loss"] == pytest.approx(_oracle_loss(model, x, y, 0.3), rel=1e-5)


def test_a_loaded_model_without_the_scheduler_is_nan(data, tmp_path):
    x, y = data
    model, _ = _compiled(klr.StepAlpha([1, 3], [0.3, 0.1, 0.05]), learning_rate=0.1)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[klr.AlphaScheduler()])
    path = tmp_path / "scheduled.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.loss.alpha_state.epoch == 1
    assert np.isnan(loaded.evaluate(x, y, verbose=0)[0])
    history = loaded.fit(x, y, initial_epoch=2, epochs=3, verbose=0)
    assert np.isnan(history.history["loss"][0]) and np.isnan(history.history["alpha"][0])
    loaded = keras.saving.load_model(path, safe_mode=True)
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True, callbacks=[klr.AlphaScheduler()])
    assert logs["alpha"] == pytest.approx(0.1)  # the last epoch trained (1)
    assert logs["loss"] == pytest.approx(_oracle_loss(loaded, x, y, 0.1), rel=1e-5)
    history = loaded.fit(x, y, initial_epoch=2, epochs=4, verbose=0,
                         callbacks=[klr.AlphaScheduler()])  # fmt: skip
    assert history.history["alpha"] == pytest.approx([0.1, 0.05])
    assert np.isfinite(history.history["loss"]).all()
