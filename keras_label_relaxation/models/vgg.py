"""VGG16 adapted to CIFAR, as in the paper's supplement (A.2.3)."""

import keras

# (filters, dropout after the block's conv or None when a max-pool follows), per conv layer.
_VGG16_PLAN = (
    (64, 0.3), (64, None),
    (128, 0.4), (128, None),
    (256, 0.4), (256, 0.4), (256, None),
    (512, 0.4), (512, 0.4), (512, None),
    (512, 0.4), (512, 0.4), (512, None),
)  # fmt: skip


def vgg16(input_shape, num_classes, final_activation=None, weight_decay=5e-4, name="vgg16"):
    """VGG16 for small images with BatchNormalization and growing Dropout.

    Thirteen 3x3 convolutions (64-64, 128-128, 256x3, 512x3, 512x3), each
    followed by ReLU and BatchNormalization; Dropout 0.3 after the first
    convolution, 0.4 after the inner ones, and a 2x2 max-pool (``"same"``
    padding, so 28x28 inputs work too) closing each block; then Dropout 0.5,
    Dense(512)-ReLU-BatchNormalization, Dropout 0.5 and the output Dense. This
    is the CIFAR adaptation the supplement describes (BatchNorm and Dropout
    "from 0.3 to 0.5 for increasing depth"), with the authors' L2(5e-4) on the
    convolution kernels.

    Args:
        input_shape: Shape of one image, e.g. ``(32, 32, 3)``.
        num_classes: Number of classes ``K``.
        final_activation: ``None`` for logits (default) or ``"softmax"``.
        weight_decay: L2 coefficient on convolution and dense kernels.
        name: Model name.

    Returns:
        A ``keras.Model``: 15,001,418 parameters (14,991,946 trainable) for
        32x32x3 inputs and 10 classes (Simonyan & Zisserman's ImageNet VGG16 has 138M, most of them
        in its 4096-wide dense layers). The output layer computes in float32.

    Example:
    >>> vgg16((32, 32, 3), 10).count_params()
    15001418
    """
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    for filters, dropout in _VGG16_PLAN:
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", kernel_regularizer=regularizer
        )(x)
        x = keras.layers.BatchNormalization()(x)
        if dropout is None:
            x = keras.layers.MaxPooling2D(2, padding="same")(x)
        else:
            x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(512, activation="relu", kernel_regularizer=regularizer)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(
        num_classes, activation=final_activation, dtype="float32", name="output"
    )(x)
    return keras.Model(inputs, outputs, name=name)
