"""The paper's architectures as Keras functional models."""

from keras_label_relaxation.models.dense import simple_dense

__all__ = ["simple_dense"]
