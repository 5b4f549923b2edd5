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
