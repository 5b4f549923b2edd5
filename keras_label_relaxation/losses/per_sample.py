"""One ``alpha`` per example in ``model.fit``: the data carries it next to the target.

Keras hands a loss only ``y_true``, ``y_pred`` and ``sample_weight``, and it
requires ``y`` to have the structure of the model's outputs. So the example's
``alpha`` travels in ``y``: the data gives ``y = {"target": t, "alpha": a}``
(NumPy, ``tf.data``, generators alike), a thin model wrapper,
``PerSampleAlpha``, packs it into one target tensor for the loss (the target
with ``alpha`` as an extra last column, read by a label relaxation loss built
with ``alpha="per_sample"``) and gives the metrics the plain target, so
``"accuracy"`` and the calibration metrics see exactly what they would see
without per-sample ``alpha``. Everything else (``sample_weight``, masks,
reductions, ``MirroredStrategy``, ``model.save``) is Keras' own path.

Why not ``sample_weight`` or a packed ``y`` without the wrapper: a weight
would scale the loss instead of changing the credal set, and packed targets
reach the metrics too, where ``categorical_accuracy`` would take ``argmax``
of ``[label, alpha]`` and report a finite, wrong number.
"""

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _validation

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")

#: The ``alpha`` of a label relaxation loss that reads one value per example from its targets.
PER_SAMPLE = "per_sample"
TARGET_KEY, ALPHA_KEY = "target", "alpha"


def alpha_targets(target, alpha):
    """``{"target": target, "alpha": alpha}`` for ``PerSampleAlpha.fit``, ``alpha`` checked.

    Args:
        target: The targets as the loss takes them: integer ids ``(N,)``,
            one-hot or soft rows ``(N, K)``, binary targets ``(N, D)``.
        alpha: One value in (0, 1) per example, shape ``(N,)``.

    Returns:
        The dict, with ``alpha`` as a float32 array.

    Raises:
        ValueError: naming the first entries of ``alpha`` outside (0, 1) or a
            length that differs from the targets'.

    Example:
    >>> y = alpha_targets(np.array([0, 2]), np.array([0.1, 0.3]))
    >>> sorted(y), y["alpha"].dtype
    (['alpha', 'target'], dtype('float32'))
    """
    target = np.asarray(target)
    values = np.asarray(alpha, dtype=np.float64)
    if values.ndim != 1 or len(values) != len(target):
        raise ValueError(
            "Argument `alpha` must hold one value per example, shape "
            f"({len(target)},). Received: alpha.shape={values.shape}"
        )
    _validation.check_probability_entries(values, "alpha")
    return {TARGET_KEY: target, ALPHA_KEY: values.astype(np.float32)}


def pack_alpha(target, alpha):
    """The target with ``alpha`` appended as its last column, ``(..., T + 1)``.

    ``alpha`` has the example shape ``(...)``; a target of that same shape
    (integer ids, one binary target) gets a column axis first. The result
    has a float dtype (float32, or float64 where either input is float64):
    class ids are exact up to 2**24 in float32.
    """
    target, alpha = ops.convert_to_tensor(target), ops.convert_to_tensor(alpha)
    dtype = "float64" if "float64" in (target.dtype, alpha.dtype) else "float32"
    if len(target.shape) == len(alpha.shape):
        target = ops.expand_dims(target, axis=-1)
    columns = [ops.cast(target, dtype), ops.expand_dims(ops.cast(alpha, dtype), axis=-1)]
    return ops.concatenate(columns, axis=-1)


def unpack_alpha(packed, y_pred):
    """``(target, alpha)`` from ``pack_alpha``'s layout for predictions ``y_pred``.

    The packed targets have ``y_pred``'s rank and a last axis of 2 (class ids
    or one binary target, then ``alpha``) or ``y_pred.shape[-1] + 1`` (target
    rows, then ``alpha``); anything else is refused naming the shapes.
    """
    packed = ops.convert_to_tensor(packed)
    columns = packed.shape[-1] if len(packed.shape) else None
    if len(packed.shape) != len(y_pred.shape) or columns not in (2, y_pred.shape[-1] + 1, None):
        raise ValueError(
            'A loss built with alpha="per_sample" takes targets with `alpha` as an extra last '
            "column (`PerSampleAlpha` packs them from y = {'target': ..., 'alpha': ...}). "
            f"Received: y_true.shape={tuple(packed.shape)}, y_pred.shape={tuple(y_pred.shape)}"
        )
    return packed[..., :-1], packed[..., -1]


def _split(y):
    if not isinstance(y, dict) or set(y) != {TARGET_KEY, ALPHA_KEY}:
        structure = sorted(y) if isinstance(y, dict) else type(y).__name__
        raise ValueError(
            "`PerSampleAlpha` expects y = {'target': ..., 'alpha': ...} (see "
            f"`alpha_targets`). Received: y={structure}"
        )
    return y[TARGET_KEY], y[ALPHA_KEY]


def _weight(sample_weight):
    # Keras' data adapters give a single sample_weight array the structure of y (one copy per key).
    if isinstance(sample_weight, dict):
        return sample_weight[TARGET_KEY]
    return sample_weight


@_SERIALIZABLE
class PerSampleAlpha(keras.Model):
    """Wrap a classifier so that ``fit``/``evaluate`` take one ``alpha`` per example.

    The data gives ``y = {"target": t, "alpha": a}`` (``alpha_targets`` builds
    and checks it); the loss, a label relaxation loss with
    ``alpha="per_sample"``, gets ``t`` with ``a`` packed as an extra column
    and computes each example's loss with its own ``alpha``; the metrics get
    ``t`` alone. Predictions, weights, masks and ``sample_weight`` are the
    wrapped model's and Keras' own. An ``alpha`` outside (0, 1) gives that
    example a NaN loss (``validate_args=True`` on the loss raises in eager
    steps, as on torch).

    Args:
        model: The classifier (any Keras model).
        name: Model name.

    Example:
    >>> import keras, numpy as np
    >>> from keras_label_relaxation.losses import SparseLabelRelaxation
    >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model = PerSampleAlpha(inner)
    >>> model.compile(
    ...     loss=SparseLabelRelaxation(alpha="per_sample", from_logits=True),
    ...     metrics=["accuracy"],
    ... )
    >>> x, y = np.zeros((6, 4), "float32"), np.array([0, 1, 2, 0, 1, 2])
    >>> history = model.fit(x, alpha_targets(y, np.linspace(0.05, 0.3, 6)), verbose=0)
    """

    def __init__(self, model, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.classifier = model

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target, alpha = _split(y)
        return super().compute_loss(
            x=x,
            y=pack_alpha(target, alpha),
            y_pred=y_pred,
            sample_weight=_weight(sample_weight),
            training=training,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        target, _ = _split(y)
        return super().compute_metrics(x, target, y_pred, sample_weight=_weight(sample_weight))

    def get_config(self):
        return {"name": self.name, "model": keras.saving.serialize_keras_object(self.classifier)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(
            config.pop("model"), custom_objects=custom_objects
        )
        return cls(model, **config)


def check_alpha_argument(alpha):
    """A float in (0, 1) (returned as float) or ``"per_sample"``; else a ValueError naming it."""
    if isinstance(alpha, str):
        if alpha != PER_SAMPLE:
            raise ValueError(
                'Invalid value for argument `alpha`. Expected a float in (0, 1) or "per_sample". '
                f"Received: alpha={alpha!r}"
            )
        return alpha
    return _validation.check_probability_parameter(alpha, "alpha")
