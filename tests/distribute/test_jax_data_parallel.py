"""JAX: model.fit under keras.distribution.DataParallel on 2 CPU devices equals one device.

JAX's host platform is split into 2 devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``)
in a subprocess; every loss variant trains for 2 epochs from the same weights with and
without ``DataParallel``, and the losses and metrics (accuracy, ECE, Brier) agree to 1e-5.
"""

import importlib.util

import pytest

from tests.conftest import assert_histories_agree, run_on_two_devices

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")

SCRIPT = """
    from keras import distribution

    keras.utils.set_random_seed(0)
    weights = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)]).get_weights()
    data_parallel = distribution.DataParallel(devices=jax.devices("cpu"))

    def run(make_loss, targets, distributed):
        distribution.set_distribution(data_parallel if distributed else None)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        model.set_weights(weights)
        metrics = []
        if targets is not binary:
            metrics = ["accuracy", klr.ExpectedCalibrationError(from_logits=True),
                       klr.BrierScore(from_logits=True)]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=make_loss(), metrics=metrics)
        history = model.fit(x, targets, batch_size=64, epochs=2, shuffle=False, verbose=0)
        devices = len(model.trainable_variables[0].value.sharding.device_set)
        return {k: [float(v) for v in vals] for k, vals in history.history.items()}, devices

    out, devices = {}, {}
    for name, (make_loss, targets) in cases.items():
        one, devices["one"] = run(make_loss, targets, False)
        two, devices["two"] = run(make_loss, targets, True)
        out[name] = {"one": one, "two": two}
    print(json.dumps({"devices": devices, "results": out}))
    """


def test_fit_under_data_parallel_equals_one_device_for_every_loss():
    values = run_on_two_devices("jax", SCRIPT, timeout=600)
    # The distributed variables live on both devices (replicated), the others on one.
    assert values["devices"] == {"one": 1, "two": 2}
    assert_histories_agree(values["results"])
