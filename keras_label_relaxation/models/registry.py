"""The paper's architectures by name."""

from keras_label_relaxation.models.dense import simple_dense
from keras_label_relaxation.models.densenet import densenet_bc
from keras_label_relaxation.models.resnet import resnet56_v2
from keras_label_relaxation.models.vgg import vgg16


def densenet_bc_100_12(input_shape, num_classes, **kwargs):
    """DenseNet-BC with depth 100 and growth rate 12, the paper's configuration."""
    return densenet_bc(input_shape, num_classes, depth=100, growth_rate=12, **kwargs)


_MODELS = {
    "simple_dense": simple_dense,
    "vgg16": vgg16,
    "resnet56_v2": resnet56_v2,
    "densenet_bc_100_12": densenet_bc_100_12,
}

#: The names ``get_model`` accepts.
MODEL_NAMES = tuple(_MODELS)


def get_model(name, input_shape, num_classes, **kwargs):
    """Build one of the paper's architectures.

    Args:
        name: ``"simple_dense"`` (2x1024 dense, MNIST/Fashion-MNIST),
            ``"vgg16"``, ``"resnet56_v2"`` or ``"densenet_bc_100_12"`` (CIFAR).
        input_shape: Shape of one input, e.g. ``(32, 32, 3)``.
        num_classes: Number of classes.
        **kwargs: Passed to the builder (``final_activation``, ``weight_decay``, ...).

    Returns:
        A ``keras.Model`` that outputs logits unless ``final_activation="softmax"``.

    Example:
    >>> get_model("simple_dense", (28, 28, 1), 10).name
    'simple_dense'
    """
    if name not in _MODELS:
        raise ValueError(f"Unknown model name: {name!r}. Valid names: {', '.join(MODEL_NAMES)}")
    return _MODELS[name](input_shape, num_classes, **kwargs)
