"""The paper's architectures as Keras functional models (any backend)."""

from keras_label_relaxation.models.cnn import small_cnn
from keras_label_relaxation.models.dense import simple_dense
from keras_label_relaxation.models.densenet import densenet_bc
from keras_label_relaxation.models.registry import MODEL_NAMES, get_model
from keras_label_relaxation.models.resnet import resnet56_v2, resnet_v2
from keras_label_relaxation.models.vgg import vgg16

__all__ = [
    "MODEL_NAMES",
    "densenet_bc",
    "get_model",
    "resnet56_v2",
    "resnet_v2",
    "simple_dense",
    "small_cnn",
    "vgg16",
]
