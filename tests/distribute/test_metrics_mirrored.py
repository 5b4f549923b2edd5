"""Calibration metrics under tf.distribute.MirroredStrategy on 2 logical CPU devices equal
one device (every metric's state sums over replicas)."""

import keras
import pytest

from tests.conftest import run_on_two_devices

SCRIPT = """
    keras.utils.set_random_seed(0)
    single = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    weights = single.get_weights()
    metrics = lambda: [klr.ExpectedCalibrationError(from_logits=True),
                       klr.ClasswiseExpectedCalibrationError(4, from_logits=True),
                       klr.BrierScore(from_logits=True),
                       klr.CalibrationError(norm="l2", from_logits=True, name="rms"),
                       klr.CalibrationError(mode="classwise", num_classes=4, binning="equal_mass",
                                            from_logits=True, name="classwise_ace"),
                       klr.KSCalibrationError(from_logits=True),
                       klr.SmoothCalibrationError(from_logits=True)]
    single.compile(loss=klr.SparseLabelRelaxation(0.1, from_logits=True), metrics=metrics())
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        mirrored.set_weights(weights)
        mirrored.compile(loss=klr.SparseLabelRelaxation(0.1, from_logits=True), metrics=metrics())
    one = single.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    two = mirrored.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    # The state itself sums over replicas: every sample is counted once.
    with strategy.scope():
        metric = klr.ExpectedCalibrationError(from_logits=True)
    logits = single.predict(x, verbose=0)
    data = tf.data.Dataset.from_tensor_slices((y, logits)).batch(64)

    @tf.function
    def update(labels, outputs):
        strategy.run(metric.update_state, args=(labels, outputs))

    for labels, outputs in strategy.experimental_distribute_dataset(data):
        update(labels, outputs)
    counted = float(np.sum(metric.bin_weight.numpy()))
    streamed = float(metric.result())
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "single": one, "mirrored": two,
                      "counted": counted, "streamed": streamed}))
    """


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute test")
def test_metric_values_under_mirrored_strategy_equal_single_device():
    values = run_on_two_devices("tensorflow", SCRIPT, timeout=300)
    assert values["replicas"] == 2
    keys = ("ece", "classwise_ece", "brier_score", "rms", "classwise_ace", "ks_ce",
            "smooth_ece", "loss")  # fmt: skip
    for key in keys:
        assert values["mirrored"][key] == pytest.approx(values["single"][key], abs=1e-5), key
    assert values["single"]["ece"] > 0.01  # a non-trivial value
    assert values["counted"] == 256.0
    assert values["streamed"] == pytest.approx(values["single"]["ece"], abs=1e-5)
