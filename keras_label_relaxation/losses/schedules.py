"""``alpha`` that changes during training: schedules, the state they drive, the callback.

A label relaxation loss built with ``alpha=<schedule>`` keeps its current
``alpha`` in an ``AlphaState``: a ``keras.metrics.Metric`` holding one
variable. Passed in ``compile(metrics=[..., loss.alpha_state])`` it is part of
the state Keras threads through every compiled step, so a new value reaches
the next step without recompiling on every backend (Keras' JAX trainer is
stateless: inside ``compute_loss`` it maps only model and metric variables, so
a plain variable held by the loss would be frozen at its traced value), and
its ``result()`` puts ``alpha`` (``val_alpha``) into ``History`` and
TensorBoard. ``AlphaScheduler``, a callback, sets it at the start of every
epoch from the schedule and refuses to run when the state is not compiled in.

``alpha`` is NaN at the start of every ``fit`` and ``evaluate`` that has no
``AlphaScheduler`` among its callbacks (``AlphaState.reset_state``, which Keras
calls there, sets it to NaN), so a scheduled loss used without its callback
gives NaN, never a finite loss at a value nobody chose for that run: not the
last epoch's ``alpha`` of an earlier ``fit`` (``initial_epoch=`` resumed
without the callback), nor that of a reloaded model. Only ``set_epoch``
called by hand holds a value outside the scheduler (until a scheduled
``fit`` takes over). The state remembers its last epoch through
``get_config``: ``evaluate(..., callbacks=[AlphaScheduler()])`` of a saved and
reloaded model is at the ``alpha`` it trained with last.

Schedules are functions of the epoch ``e`` (0-based), evaluated on the host:

- ``ConstantAlpha(alpha)``: ``alpha``.
- ``LinearAlpha(start, end, epochs)``: ``start + (end - start) min(e / epochs, 1)``.
- ``CosineAlpha(start, end, epochs)``:
  ``end + (start - end) (1 + cos(pi min(e / epochs, 1))) / 2``.
- ``StepAlpha(boundaries, values)``: ``values[i]`` for
  ``boundaries[i - 1] <= e < boundaries[i]`` (as Keras' ``PiecewiseConstantDecay``).

Each takes ``warmup_epochs`` and ``warmup_alpha``: for ``e < warmup_epochs``,
``alpha`` moves linearly from ``warmup_alpha`` to the schedule's first value,
and the schedule starts after the warm-up.
"""

import bisect
import math

import keras
from keras import ops

from keras_label_relaxation import _validation

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")


def _check_epochs(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a number >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return value


class AlphaSchedule:
    """Base class: ``alpha`` as a function of the epoch, with an optional linear warm-up.

    Subclasses implement ``value(epoch)`` (epochs counted after the warm-up)
    and ``get_config``.

    Args:
        warmup_epochs: Epochs of linear warm-up before the schedule starts.
        warmup_alpha: ``alpha`` at epoch 0 of the warm-up, in (0, 1)
            (required when ``warmup_epochs > 0``).
    """

    def __init__(self, warmup_epochs=0, warmup_alpha=None):
        self.warmup_epochs = _check_epochs(warmup_epochs, "warmup_epochs", 0)
        if self.warmup_epochs > 0 or warmup_alpha is not None:
            warmup_alpha = _validation.check_probability_parameter(warmup_alpha, "warmup_alpha")
        self.warmup_alpha = warmup_alpha

    def value(self, epoch):
        raise NotImplementedError

    def __call__(self, epoch):
        """``alpha`` at ``epoch`` (0-based) as a Python float in (0, 1)."""
        epoch = _check_epochs(epoch, "epoch", 0)
        if epoch < self.warmup_epochs:
            first = self.value(0)
            return self.warmup_alpha + (first - self.warmup_alpha) * epoch / self.warmup_epochs
        return self.value(epoch - self.warmup_epochs)

    def get_config(self):
        return {"warmup_epochs": self.warmup_epochs, "warmup_alpha": self.warmup_alpha}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@_SERIALIZABLE
class ConstantAlpha(AlphaSchedule):
    """``alpha`` throughout (after an optional warm-up).

    Example:
    >>> ConstantAlpha(0.1, warmup_epochs=2, warmup_alpha=0.3)(1)
    0.2
    """

    def __init__(self, alpha, warmup_epochs=0, warmup_alpha=None):
        super().__init__(warmup_epochs, warmup_alpha)
        self.alpha = _validation.check_probability_parameter(alpha, "alpha")

    def value(self, epoch):
        return self.alpha

    def get_config(self):
        return {"alpha": self.alpha, **super().get_config()}


@_SERIALIZABLE
class LinearAlpha(AlphaSchedule):
    """``start + (end - start) min(e / epochs, 1)``.

    Example:
    >>> LinearAlpha(0.4, 0.1, epochs=3)(1)
    0.30000000000000004
    """

    def __init__(self, start, end, epochs, warmup_epochs=0, warmup_alpha=None):
        super().__init__(warmup_epochs, warmup_alpha)
        self.start = _validation.check_probability_parameter(start, "start")
        self.end = _validation.check_probability_parameter(end, "end")
        self.epochs = _check_epochs(epochs, "epochs", 1)

    def value(self, epoch):
        return self.start + (self.end - self.start) * min(epoch / self.epochs, 1.0)

    def get_config(self):
        return {"start": self.start, "end": self.end, "epochs": self.epochs, **super().get_config()}


@_SERIALIZABLE
class CosineAlpha(LinearAlpha):
    """``end + (start - end) (1 + cos(pi min(e / epochs, 1))) / 2``.

    Example:
    >>> round(CosineAlpha(0.4, 0.1, epochs=4)(2), 6)
    0.25
    """

    def value(self, epoch):
        progress = min(epoch / self.epochs, 1.0)
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * progress))


@_SERIALIZABLE
class StepAlpha(AlphaSchedule):
    """``values[i]`` for ``boundaries[i - 1] <= e < boundaries[i]``.

    Args:
        boundaries: Increasing epochs at which ``alpha`` changes.
        values: ``len(boundaries) + 1`` values in (0, 1).

    Example:
    >>> StepAlpha([2, 5], [0.3, 0.2, 0.1])(4)
    0.2
    """

    def __init__(self, boundaries, values, warmup_epochs=0, warmup_alpha=None):
        super().__init__(warmup_epochs, warmup_alpha)
        boundaries = [_check_epochs(b, "boundaries", 0) for b in boundaries]
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])) or (
            len(values) != len(boundaries) + 1
        ):
            raise ValueError(
                "Arguments `boundaries` must increase and `values` hold one more entry. "
                f"Received: boundaries={boundaries}, values={list(values)}"
            )
        self.boundaries = boundaries
        self.values = [_validation.check_probability_parameter(v, "values") for v in values]

    def value(self, epoch):
        return self.values[bisect.bisect_right(self.boundaries, epoch)]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, **super().get_config()}


@_SERIALIZABLE
class AlphaState(keras.metrics.Metric):
    """The current ``alpha`` of a scheduled loss, as a metric (see the module docstring).

    ``update_state`` does nothing and ``result()`` is the current ``alpha``.
    ``reset_state``, which Keras calls at the start of every ``fit`` epoch
    and every ``evaluate``, sets ``alpha`` to NaN unless ``set_epoch`` holds
    it: ``AlphaScheduler`` sets it again after each reset, so a run without
    the callback reads NaN. The variable aggregates as
    ``"only_first_replica"``: under ``MirroredStrategy`` every replica reads
    the value the callback assigned.

    Args:
        schedule: An ``AlphaSchedule``.
        epoch: The last epoch whose ``alpha`` was set (``get_config`` keeps
            it; ``AlphaScheduler`` evaluates there). ``alpha`` starts NaN.
        name: Metric name (the ``History`` key).
    """

    def __init__(self, schedule, epoch=None, name="alpha", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(schedule)
        if not isinstance(schedule, AlphaSchedule):
            raise ValueError(
                "Invalid value for argument `schedule`. Expected an AlphaSchedule. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        #: The last epoch whose ``alpha`` was set (``None``: never).
        self.epoch = None if epoch is None else _check_epochs(epoch, "epoch", 0)
        self._held = False
        self.alpha = self.add_variable(
            shape=(),
            initializer=keras.initializers.Constant(float("nan")),
            dtype="float32",
            aggregation="only_first_replica",
            name="alpha",
        )

    def set_epoch(self, epoch):
        """Hold ``alpha`` at the schedule's value at ``epoch``; return that value.

        For use without ``AlphaScheduler`` (``evaluate``, ``train_on_batch``,
        a loop of one's own): the value survives Keras' metric resets until a
        ``fit`` with ``AlphaScheduler`` takes over (and leaves NaN behind).
        """
        value = self._assign(epoch)
        self._held = True
        return value

    def _assign(self, epoch):
        value = self.schedule(epoch)
        self.alpha.assign(value)
        self.epoch = epoch
        return value

    def _release(self):
        """NaN until set again (what a run without the scheduler reads)."""
        self._held = False
        self.alpha.assign(float("nan"))

    def update_state(self, *args, **kwargs):
        pass

    def reset_state(self):
        if not self._held:
            self.alpha.assign(float("nan"))

    def result(self):
        # A copy: JAX donates the variable's buffer to the next step.
        return ops.copy(ops.convert_to_tensor(self.alpha))

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "epoch": self.epoch,
        }


class AlphaScheduler(keras.callbacks.Callback):
    """Set every scheduled label relaxation loss' ``alpha`` for ``fit`` and ``evaluate``.

    Finds the losses of the compiled model whose ``alpha`` is a schedule (and
    ``DataAmbiguation``'s scheduled ``beta``: every state in a loss'
    ``schedule_states``). In
    ``fit``, sets each ``alpha_state`` to the schedule's value at the epoch in
    ``on_epoch_begin``, and again at the start of the validation (Keras resets
    the metrics there); after the last epoch ``alpha`` is NaN again, so a later
    run without the callback reads NaN. In ``evaluate``
    (``callbacks=[AlphaScheduler()]``), sets it to the value at the state's
    last epoch (``alpha_state.epoch``: the last epoch trained, kept by a saved
    model, or ``set_epoch``'s; NaN if there is none). Raises ``ValueError``
    when the model has no scheduled loss, or when a loss' ``alpha_state`` is
    not among the compiled metrics (without it a compiled step would keep the
    traced ``alpha`` on JAX).

    Args:
        verbose: Print the new ``alpha`` at every epoch.

    Example:
    >>> import keras, numpy as np
    >>> from keras_label_relaxation.losses import SparseLabelRelaxation
    >>> loss = SparseLabelRelaxation(alpha=LinearAlpha(0.3, 0.1, epochs=2), from_logits=True)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model.compile(optimizer="sgd", loss=loss, metrics=[loss.alpha_state])
    >>> history = model.fit(np.zeros((8, 4)), np.zeros(8), epochs=3, verbose=0,
    ...                     callbacks=[AlphaScheduler()])
    >>> [round(a, 4) for a in history.history["alpha"]]
    [0.3, 0.2, 0.1]
    >>> logs = model.evaluate(np.zeros((8, 4)), np.zeros(8), verbose=0, return_dict=True,
    ...                       callbacks=[AlphaScheduler()])
    >>> round(logs["alpha"], 4)
    0.1
    """

    def __init__(self, verbose=0):
        super().__init__()
        self.verbose = verbose
        self._states = []
        self._checked = False
        self._in_fit = False
        self._test_pending = False

    def _find_states(self):
        losses = keras.tree.flatten(self.model.loss)
        self._states = [state for loss in losses for state in getattr(loss, "schedule_states", ())]
        if not self._states:
            raise ValueError(
                "AlphaScheduler: the compiled loss has no alpha schedule (build the loss with "
                "alpha=LinearAlpha(...), CosineAlpha(...), StepAlpha(...) or ConstantAlpha(...), "
                "or DataAmbiguation with a beta schedule or warmup_epochs)."
            )
        self._checked = False

    def _check_compiled(self):
        # TensorFlow builds compile metrics when it traces the first step: check after it.
        if self._checked:
            return
        self._checked = True
        compiled = {id(v) for v in self.model.metrics_variables}
        missing = [s.name for s in self._states if id(s.alpha) not in compiled]
        if missing:
            raise ValueError(
                "AlphaScheduler: pass the scheduled loss' state to compile, "
                "`compile(..., metrics=[..., *loss.schedule_states])`, so that every compiled step "
                f"reads the current alpha. Not compiled: {missing}"
            )

    def on_train_begin(self, logs=None):
        self._find_states()
        self._in_fit = True
        for state in self._states:
            state._held = False  # the schedule takes over from set_epoch

    def on_epoch_begin(self, epoch, logs=None):
        for state in self._states:
            value = state._assign(epoch)
            if self.verbose:
                print(f"Epoch {epoch + 1}: AlphaScheduler sets {state.name} to {value:.6g}.")

    def on_train_batch_end(self, batch, logs=None):
        self._check_compiled()

    def on_train_end(self, logs=None):
        self._in_fit = False
        for state in self._states:
            state._release()

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._find_states()
        # Keras resets the metrics (alpha: NaN) after on_test_begin: set it at the first batch.
        self._test_pending = True

    def on_test_batch_begin(self, batch, logs=None):
        if not self._test_pending:
            return
        self._test_pending = False
        for state in self._states:
            if state.epoch is not None:
                value = state._assign(state.epoch)
                if self.verbose and not self._in_fit:
                    print(f"AlphaScheduler evaluates at {state.name} = {value:.6g}.")

    def on_test_batch_end(self, batch, logs=None):
        self._check_compiled()

    def on_test_end(self, logs=None):
        if not self._in_fit:
            for state in self._states:
                if not state._held:
                    state._release()
