"""The 2x1024 dense network the paper uses on MNIST and Fashion-MNIST."""

import keras


def simple_dense(input_shape, num_classes, final_activation=None, name="simple_dense"):
    """Flatten, Dense(1024, relu) x 2, Dense(num_classes).

    Args:
        input_shape: Shape of one input, e.g. ``(28, 28, 1)``.
        num_classes: Number of classes ``K``.
        final_activation: ``None`` for logits (default) or ``"softmax"``.
        name: Model name.

    Returns:
        A ``keras.Model``; for 28x28x1 inputs and 10 classes it has 1,863,690
        parameters. The output layer computes in float32 under mixed precision.

    Example:
    >>> simple_dense((28, 28, 1), 10).count_params()
    1863690
    """
    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(1024, activation="relu")(x)
    x = keras.layers.Dense(1024, activation="relu")(x)
    outputs = keras.layers.Dense(
        num_classes, activation=final_activation, dtype="float32", name="output"
    )(x)
    return keras.Model(inputs, outputs, name=name)
