"""Training under mixed_float16 / mixed_bfloat16: finite, float32 losses, accuracy as float32."""

import dataclasses

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from keras_label_relaxation import datasets, models


def _train(policy, data, epochs):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = models.simple_dense(data.input_shape, data.num_classes)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        loss=klr.SparseLabelRelaxation(0.1, from_logits=True),
        metrics=["accuracy", klr.ExpectedCalibrationError(from_logits=True)],
    )
    history = model.fit(data.x_train, data.y_train, batch_size=64, epochs=epochs, verbose=0)
    scores = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    return history.history, scores


# float16 matrix products are emulated on CPU (about 40x slower than bfloat16 here): the
# float16 run trains on fewer digits for fewer epochs, against float32 on the same.
@pytest.mark.parametrize(
    ("policy", "train_size", "epochs"), [("mixed_float16", 400, 4), ("mixed_bfloat16", None, 8)]
)
def test_dense_network_on_digits_trains_as_in_float32(restore_policy, policy, train_size, epochs):
    data = datasets.standardize(datasets.resample(datasets.load("digits"), seed=0))
    data = dataclasses.replace(
        data, x_train=data.x_train[:train_size], y_train=data.y_train[:train_size]
    )
    history32, scores32 = _train("float32", data, epochs)
    history, scores = _train(policy, data, epochs)
    assert np.isfinite(history["loss"]).all() and history["loss"][-1] < 0.5 * history["loss"][0]
    # Within noise of float32: a few of the 300 test digits.
    assert abs(scores["accuracy"] - scores32["accuracy"]) <= 0.02
    assert abs(scores["ece"] - scores32["ece"]) <= 0.03


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", ["vgg16", "resnet56_v2", "densenet_bc_100_12"])
def test_cifar_models_take_finite_mixed_precision_steps(restore_policy, policy, name):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    # Small images: half-precision convolutions are emulated (slow) on CPU; 8x8 still passes
    # through every stage of each architecture.
    model = models.get_model(name, (8, 8, 3), 10)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
        loss=klr.SparseLabelRelaxation(0.1, from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (4, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 4)
    before = [w.copy() for w in model.get_weights()]
    losses = [float(model.train_on_batch(x, y)) for _ in range(2)]
    assert np.isfinite(losses).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert keras.backend.standardize_dtype(model.outputs[0].dtype) == "float32"
