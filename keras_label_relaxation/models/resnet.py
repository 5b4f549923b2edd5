"""Pre-activation ResNet (He et al., 2016) for CIFAR, as in the Keras CIFAR-10 ResNet example."""

import keras


def _conv(x, filters, kernel_size, strides, regularizer):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
    )(x)


def _pre_activated_conv(x, filters, kernel_size, strides, regularizer, activate=True):
    """BatchNorm-ReLU-Conv (``activate=False``: the conv alone)."""
    if activate:
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
    return _conv(x, filters, kernel_size, strides, regularizer)


def resnet_v2(
    input_shape,
    num_classes,
    depth=56,
    final_activation=None,
    weight_decay=1e-4,
    output_decay=0.01,
    name=None,
):
    """Pre-activation bottleneck ResNet ("ResNet v2") for small images.

    ``depth = 9 n + 2`` with ``n`` bottleneck blocks (1x1, 3x3, 1x1) in each of
    three stages (16/64, 64/128, 128/256 filters; stages two and three halve
    the resolution); a 3x3 stem; BatchNorm-ReLU before every convolution
    except the first block's (the stem already normalised it); then
    BatchNorm-ReLU, global average pooling and the output Dense. As the Keras
    CIFAR-10 ResNet example the paper used, with the authors' L2 regularisers
    (``weight_decay`` on convolution kernels, ``output_decay`` on the output
    kernel and activity). No Dropout.

    Args:
        input_shape: Shape of one image, e.g. ``(32, 32, 3)``.
        num_classes: Number of classes ``K``.
        depth: ``9 n + 2`` (56: ``n = 6``).
        final_activation: ``None`` for logits (default) or ``"softmax"``.
        weight_decay: L2 coefficient on convolution kernels.
        output_decay: L2 coefficient on the output Dense kernel and activity.
        name: Model name (default ``f"resnet{depth}_v2"``).

    Returns:
        A ``keras.Model``. The output layer computes in float32.
    """
    if (depth - 2) % 9 != 0 or depth < 11:
        raise ValueError(
            f"Invalid value for argument `depth`. Expected 9 n + 2 (e.g. 56, 110, 164). "
            f"Received: depth={depth}"
        )
    blocks = (depth - 2) // 9
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
    inputs = keras.Input(shape=tuple(input_shape))
    x = _conv(inputs, 16, 3, 1, regularizer)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    filters_in = 16
    for stage in range(3):
        filters_out = filters_in * (4 if stage == 0 else 2)
        for block in range(blocks):
            first = block == 0
            strides = 2 if first and stage > 0 else 1
            y = _pre_activated_conv(
                x, filters_in, 1, strides, regularizer, activate=not (first and stage == 0)
            )
            y = _pre_activated_conv(y, filters_in, 3, 1, regularizer)
            y = _pre_activated_conv(y, filters_out, 1, 1, regularizer)
            if first:
                x = _conv(x, filters_out, 1, strides, regularizer)
            x = keras.layers.Add()([x, y])
        filters_in = filters_out
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    output_regularizer = keras.regularizers.L2(output_decay) if output_decay else None
    outputs = keras.layers.Dense(
        num_classes,
        activation=final_activation,
        kernel_initializer="he_normal",
        kernel_regularizer=output_regularizer,
        activity_regularizer=output_regularizer,
        dtype="float32",
        name="output",
    )(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}_v2")


def resnet56_v2(input_shape, num_classes, final_activation=None, **kwargs):
    """ResNet56 v2, the paper's configuration (``resnet_v2`` with ``depth=56``).

    Returns:
        A ``keras.Model``: 1,673,738 parameters (1,663,338 trainable) for
        32x32x3 inputs and 10 classes. He et al. (2016) report 0.85M for
        ResNet-56 with basic blocks and 1.7M for their 164-layer bottleneck v2;
        the Keras example's v2, which the paper used, runs the bottlenecks of
        stages two and three at 64 and 128 filters (He et al.: 32 and 64), so
        at depth 56 it is about as large as ResNet-164.

    Example:
    >>> resnet56_v2((32, 32, 3), 10).count_params()
    1673738
    """
    return resnet_v2(
        input_shape, num_classes, depth=56, final_activation=final_activation, **kwargs
    )
