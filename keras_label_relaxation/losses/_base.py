"""The thin ``Loss`` base every loss class of the package derives from."""

import keras
from keras import ops

from keras_label_relaxation import _numerics
from keras_label_relaxation.losses import per_sample, schedules


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
    """A label relaxation loss: ``alpha`` a float in (0, 1), ``"per_sample"`` or a schedule.

    With ``"per_sample"`` the targets carry one ``alpha`` per example as an
    extra last column (``per_sample.pack_alpha``; ``PerSampleAlpha`` packs them
    in ``fit``/``evaluate``), split off here before the loss function runs.
    With an ``AlphaSchedule`` the current ``alpha`` lives in ``alpha_state``
    (``schedules.AlphaState``), which ``compile(metrics=[..., loss.alpha_state])``
    threads through compiled steps and ``AlphaScheduler`` sets every epoch;
    ``schedule_states`` lists every such state of the loss.
    """

    def __init__(self, fn, alpha, name, reduction, dtype, **fn_kwargs):
        if isinstance(alpha, dict):  # a saved AlphaState (shared with the compiled metrics)
            alpha = keras.saving.deserialize_keras_object(alpha)
        if isinstance(alpha, schedules.AlphaSchedule):
            alpha = schedules.AlphaState(alpha)
        #: The ``AlphaState`` of a scheduled ``alpha``, else ``None``.
        self.alpha_state = alpha if isinstance(alpha, schedules.AlphaState) else None
        if self.alpha_state is None:
            alpha = per_sample.check_alpha_argument(alpha)
        # get_config returns the state object itself: saved next to the compiled metrics, it
        # gets one shared id, so load_model rebuilds one object for both.
        super().__init__(fn, name=name, reduction=reduction, dtype=dtype, alpha=alpha, **fn_kwargs)

    @property
    def schedule_states(self):
        """The ``AlphaState`` objects this loss reads (for ``compile(metrics=...)``)."""
        return [self.alpha_state] if self.alpha_state is not None else []

    def call(self, y_true, y_pred):
        return self._call_with(y_true, y_pred)

    def _call_with(self, y_true, y_pred, **overrides):
        """Call the function with the current ``alpha`` and ``overrides`` of its arguments."""
        alpha = self._fn_kwargs["alpha"]
        if self.alpha_state is not None:
            alpha = ops.convert_to_tensor(self.alpha_state.alpha)
        elif alpha == per_sample.PER_SAMPLE:
            y_true, alpha = per_sample.unpack_alpha(y_true, y_pred)
        return self._fn(y_true, y_pred, **{**self._fn_kwargs, "alpha": alpha, **overrides})
