"""A small CNN for the semi-supervised digits experiment (not one of the paper's models)."""

import keras


def small_cnn(input_shape, num_classes, name="small_cnn"):
    """Conv(32)-pool-Conv(64)-pool-Dense(128)-Dense(K) logits, ``same`` padding, ReLU.

    Example:
    >>> small_cnn((28, 28, 1), 10).count_params()
    421642
    """
    inputs = keras.Input(shape=tuple(input_shape))
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(128, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(h), name=name)
