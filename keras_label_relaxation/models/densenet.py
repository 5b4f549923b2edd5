"""DenseNet-BC (Huang et al., 2017) for CIFAR."""

import keras


def _bn_relu_conv(x, filters, kernel_size, regularizer):
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
    )(x)


def densenet_bc(
    input_shape,
    num_classes,
    depth=100,
    growth_rate=12,
    compression=0.5,
    final_activation=None,
    weight_decay=5e-5,
    name=None,
):
    """DenseNet-BC: bottleneck layers and compression, no Dropout.

    A 3x3 stem with ``2 k`` filters; three dense blocks of ``n = (depth - 4) / 6``
    bottleneck layers (BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k), output
    concatenated to the input); between blocks a transition
    BN-ReLU-Conv1x1(floor(compression * channels))-AvgPool2x2; then BN-ReLU,
    global average pooling and the output Dense, as in the authors' CIFAR
    implementation. ``weight_decay`` is the L2 coefficient on convolution
    kernels (5e-5 is the original's weight decay of 1e-4).

    Args:
        input_shape: Shape of one image, e.g. ``(32, 32, 3)``.
        num_classes: Number of classes ``K``.
        depth: ``6 n + 4`` (100: ``n = 16``).
        growth_rate: ``k``, channels each bottleneck layer adds.
        compression: Channel factor of the transitions, in (0, 1].
        final_activation: ``None`` for logits (default) or ``"softmax"``.
        weight_decay: L2 coefficient on convolution kernels.
        name: Model name (default ``f"densenet_bc_{depth}_{growth_rate}"``).

    Returns:
        A ``keras.Model``: for DenseNet-BC-100-12 on 32x32x3 inputs and 10
        classes 769,162 trainable parameters (Huang et al. report 0.8M), 793,150
        with BatchNormalization's moving statistics. The output layer computes
        in float32.

    Example:
    >>> densenet_bc((32, 32, 3), 10).count_params()
    793150
    """
    if (depth - 4) % 6 != 0 or depth < 10:
        raise ValueError(
            f"Invalid value for argument `depth`. Expected 6 n + 4 (e.g. 100, 250). "
            f"Received: depth={depth}"
        )
    if not 0.0 < compression <= 1.0:
        raise ValueError(
            "Invalid value for argument `compression`. Expected a float in (0, 1]. "
            f"Received: compression={compression}"
        )
    layers_per_block = (depth - 4) // 6
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Conv2D(
        2 * growth_rate,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
    )(inputs)
    channels = 2 * growth_rate
    for block in range(3):
        for _ in range(layers_per_block):
            y = _bn_relu_conv(x, 4 * growth_rate, 1, regularizer)
            y = _bn_relu_conv(y, growth_rate, 3, regularizer)
            x = keras.layers.Concatenate()([x, y])
            channels += growth_rate
        if block < 2:
            channels = int(compression * channels)
            x = _bn_relu_conv(x, channels, 1, regularizer)
            x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(
        num_classes, activation=final_activation, dtype="float32", name="output"
    )(x)
    return keras.Model(inputs, outputs, name=name or f"densenet_bc_{depth}_{growth_rate}")
