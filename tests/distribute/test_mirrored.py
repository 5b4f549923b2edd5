"""model.fit under tf.distribute.MirroredStrategy (2 logical CPUs) equals one device."""

import keras
import pytest

from tests.conftest import assert_histories_agree, run_on_two_devices

SCRIPT = """
    keras.utils.set_random_seed(0)
    weights = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)]).get_weights()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def run(make_loss, targets, distributed):
        def build():
            model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
            model.set_weights(weights)
            metrics = ["accuracy"] if targets is not binary else []
            if targets is not binary:
                metrics += [klr.ExpectedCalibrationError(from_logits=True),
                            klr.BrierScore(from_logits=True)]
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss=make_loss(), metrics=metrics)
            return model
        if distributed:
            with strategy.scope():
                model = build()
        else:
            model = build()
        history = model.fit(x, targets, batch_size=64, epochs=2, shuffle=False, verbose=0)
        return {k: [float(v) for v in vals] for k, vals in history.history.items()}

    out = {}
    for name, (make_loss, targets) in cases.items():
        out[name] = {"one": run(make_loss, targets, False), "two": run(make_loss, targets, True)}
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "results": out}))
    """


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute test")
def test_fit_under_mirrored_strategy_equals_one_device_for_every_loss():
    values = run_on_two_devices("tensorflow", SCRIPT, timeout=600)
    assert values["replicas"] == 2
    assert_histories_agree(values["results"])


ALPHA_SCRIPT = """
    keras.utils.set_random_seed(0)
    weights = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)]).get_weights()
    alpha = rng.uniform(0.02, 0.5, len(y)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def per_sample():
        inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        inner.set_weights(weights)
        model = klr.PerSampleAlpha(inner)
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=klr.SparseLabelRelaxation(alpha="per_sample", from_logits=True),
                      metrics=["accuracy", klr.ExpectedCalibrationError(from_logits=True)])
        return model, klr.alpha_targets(y, alpha), []

    def scheduled():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        model.set_weights(weights)
        loss = klr.SparseLabelRelaxation(alpha=klr.CosineAlpha(0.4, 0.05, epochs=2),
                                         from_logits=True)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss,
                      metrics=["accuracy", loss.alpha_state])
        return model, y, [klr.AlphaScheduler()]

    def run(build, distributed):
        if distributed:
            with strategy.scope():
                model, targets, callbacks = build()
        else:
            model, targets, callbacks = build()
        history = model.fit(x, targets, batch_size=64, epochs=3, shuffle=False, verbose=0,
                            callbacks=callbacks)
        return {k: [float(v) for v in vals] for k, vals in history.history.items()}

    print(json.dumps({name: {"one": run(build, False), "two": run(build, True)}
                      for name, build in (("per_sample", per_sample), ("scheduled", scheduled))}))
    """


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute test")
def test_per_sample_and_scheduled_alpha_under_mirrored_strategy_equal_one_device():
    values = run_on_two_devices("tensorflow", ALPHA_SCRIPT, timeout=300)
    keys = {"per_sample": {"loss", "accuracy", "ece"}, "scheduled": {"loss", "accuracy", "alpha"}}
    for name, runs in values.items():
        assert set(runs["one"]) == keys[name] == set(runs["two"]), name
        for key, series in runs["one"].items():
            assert runs["two"][key] == pytest.approx(series, abs=1e-5), (name, key)
    assert values["per_sample"]["one"]["loss"][-1] < values["per_sample"]["one"]["loss"][0]
    # Every replica reads the alpha the callback set (not a share of it).
    assert values["scheduled"]["one"]["alpha"] == pytest.approx([0.4, 0.225, 0.05], abs=1e-6)
