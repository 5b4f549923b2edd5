"""The thin ``Loss`` base every loss class of the package derives from."""

import keras

from keras_label_relaxation import _numerics
from keras_label_relaxation.losses import per_sample


class FunctionLoss(keras.losses.Loss):
    """A ``keras.losses.Loss`` that delegates to a per-sample loss function.

    Subclasses pass the function and its keyword arguments; the base class
    stores them, calls the function in ``call`` and returns them from
    ``get_config``. Reduction, ``sample_weight`` and masking are Keras' job.

    Half-precision ``dtype`` arguments (``"float16"``, ``"bfloat16"``, a mixed
    policy) are promoted to float32: a float16 loss under ``mixed_float16``
    would make the loss-scale optimizer skip every step, so the losses of this
    package always compute and return at least float32.
    """

    def __init__(self, fn, name, reduction, dtype, **fn_kwargs):
        if dtype is not None:
            policy = keras.dtype_policies.get(dtype)
            dtype = _numerics.compute_dtype(policy.compute_dtype)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = fn_kwargs

    def call(self, y_true, y_pred):
        return self._fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


class RelaxationLoss(FunctionLoss):
    """A label relaxation loss: ``alpha`` a float in (0, 1), or ``"per_sample"``.

    With ``"per_sample"`` the targets carry one ``alpha`` per example as an
    extra last column (``per_sample.pack_alpha``; ``PerSampleAlpha`` packs them
    in ``fit``/``evaluate``), split off here before the loss function runs.
    """

    def __init__(self, fn, alpha, name, reduction, dtype, **fn_kwargs):
        alpha = per_sample.check_alpha_argument(alpha)
        super().__init__(fn, name=name, reduction=reduction, dtype=dtype, alpha=alpha, **fn_kwargs)

    def call(self, y_true, y_pred):
        if self._fn_kwargs["alpha"] != per_sample.PER_SAMPLE:
            return super().call(y_true, y_pred)
        target, alpha = per_sample.unpack_alpha(y_true, y_pred)
        return self._fn(target, y_pred, **{**self._fn_kwargs, "alpha": alpha})
