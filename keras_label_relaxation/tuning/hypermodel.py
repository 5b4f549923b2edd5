"""keras-tuner integration: the loss parameter as a hyperparameter over the paper's grids."""

import inspect

import keras
import keras_tuner

from keras_label_relaxation import distribute
from keras_label_relaxation.losses.registry import LOSS_PARAMETERS, canonical_loss_name, get_loss
from keras_label_relaxation.losses.schedules import AlphaScheduler
from keras_label_relaxation.metrics import ExpectedCalibrationError

#: The paper's search grids (results.json, "grids").
PAPER_GRIDS = {
    "label_relaxation": (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4),
    "label_smoothing": (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4),
    "confidence_penalty": (0.1, 0.3, 0.5, 1.0, 2.0, 4.0, 8.0),
    "focal": (0.1, 0.2, 0.5, 1.0, 2.0, 3.5, 5.0),
}

#: The grids searched when none is given: the paper's, and for the label-noise losses
#: RDA's alpha over LR's grid, GCE's q around Zhang & Sabuncu's 0.7 and SCE's CE weight
#: around Wang et al.'s 0.01 (MNIST) and 0.1 (CIFAR-10).
DEFAULT_GRIDS = {
    **PAPER_GRIDS,
    "data_ambiguation": PAPER_GRIDS["label_relaxation"],
    "generalized_cross_entropy": (0.1, 0.3, 0.5, 0.7, 0.9),
    "symmetric_cross_entropy": (0.01, 0.05, 0.1, 0.5, 1.0),
}

#: The paper's two selection schemes as keras-tuner objectives.
OBJECTIVES = {
    "acc": keras_tuner.Objective("val_accuracy", direction="max"),
    "ece": keras_tuner.Objective("val_ece", direction="min"),
}


def get_objective(optimize_for):
    """``"acc"`` -> ``val_accuracy`` (max), ``"ece"`` -> ``val_ece`` (min)."""
    if optimize_for not in OBJECTIVES:
        raise ValueError(
            "Invalid value for argument `optimize_for`. Expected 'acc' or 'ece'. "
            f"Received: optimize_for={optimize_for!r}"
        )
    return OBJECTIVES[optimize_for]


def _fresh_optimizer(optimizer):
    if callable(optimizer) and not isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer()
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    return keras.optimizers.get(optimizer)


class LossHyperModel(keras_tuner.HyperModel):
    """A ``HyperModel`` whose hyperparameter is the loss parameter.

    ``build(hp)`` builds a fresh model with ``build_model``, chooses the loss
    parameter with ``hp.Choice`` over ``grid`` (by default ``DEFAULT_GRIDS``:
    the paper's grid for its losses), and compiles with the loss from
    ``get_loss`` and the metrics ``accuracy`` and ``ece`` (so ``val_accuracy``
    and ``val_ece`` are available as objectives; see ``OBJECTIVES``). A loss
    with schedules (RDA's threshold) also gets its ``schedule_states`` among
    the metrics, and ``fit`` adds ``AlphaScheduler`` to the callbacks. Works
    with any tuner.

    Args:
        build_model: Callable returning an uncompiled Keras model; it may take
            the ``hp`` argument to declare hyperparameters of its own.
        loss: A loss name or alias of ``get_loss`` (``"label_relaxation"``...).
        grid: Values of the loss parameter; ``None`` takes the paper's grid.
            Cross-entropy has no parameter and no grid.
        optimizer: An optimizer instance (copied for every build), a callable
            returning one, or a name.
        metrics: Extra metrics, besides accuracy and ECE.
        sparse: Whether labels are integer class ids (default ``False``:
            one-hot rows, as ``get_loss``).
        from_logits: Whether the model outputs logits (default ``False``, as
            every loss and metric of the package and of Keras; the ECE metric
            gets the same value, so a mismatch shows as ``val_ece = nan``).
        name: Name of the hypermodel.
        epochs: The training's epochs, for a loss whose parameter follows a
            schedule over the training (RDA's threshold; see ``get_loss``).

    Example:
    >>> import keras
    >>> hypermodel = LossHyperModel(
    ...     lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]),
    ...     loss="lr", grid=[0.05, 0.1], sparse=True, from_logits=True)
    >>> model = hypermodel.build(keras_tuner.HyperParameters())
    >>> model.loss.get_config()["alpha"]
    0.05
    """

    def __init__(
        self,
        build_model,
        loss="label_relaxation",
        grid=None,
        optimizer="sgd",
        metrics=None,
        sparse=False,
        from_logits=False,
        name=None,
        epochs=None,
    ):
        super().__init__(name=name)
        if not callable(build_model):
            raise ValueError(f"`build_model` must be callable. Received: {build_model!r}")
        self.build_model = build_model
        self.loss = canonical_loss_name(loss)
        self.param_name = LOSS_PARAMETERS[self.loss]
        if self.param_name is None:
            if grid is not None:
                raise ValueError(f"Loss {self.loss!r} has no parameter to search: pass grid=None.")
            self.grid = None
        else:
            grid = DEFAULT_GRIDS[self.loss] if grid is None else tuple(grid)
            if not grid:
                raise ValueError(
                    f"Invalid value for argument `grid`: empty grid for {self.loss!r}."
                )
            for value in grid:  # each value must make a valid loss
                get_loss(self.loss, value)
            self.grid = tuple(float(v) for v in grid)
        self.optimizer = optimizer
        self.metrics = list(metrics or [])
        self.sparse = bool(sparse)
        self.from_logits = bool(from_logits)
        self.epochs = epochs

    def _model(self, hp):
        parameters = inspect.signature(self.build_model).parameters
        return self.build_model(hp) if parameters else self.build_model()

    def hyperparameters(self, value=None):
        """keras-tuner ``HyperParameters`` choosing ``value`` of the grid (a loss without
        parameter: ``value=None`` and none set); what ``build`` reads.

        Raises:
            ValueError: when ``value`` is not in the grid, naming it.

        Example:
        >>> hypermodel = LossHyperModel(lambda: None, "lr", grid=[0.05, 0.1])
        >>> hypermodel.hyperparameters(0.1).values
        {'alpha': 0.1}
        """
        hp = keras_tuner.HyperParameters()
        if self.param_name is None:
            return hp
        if value is None or float(value) not in self.grid:
            raise ValueError(
                f"Invalid value for argument `value`: {value!r} is not in the grid "
                f"{self.grid} of {self.loss!r}."
            )
        hp.Choice(self.param_name, list(self.grid), default=self.grid[0])
        hp.values[self.param_name] = float(value)
        return hp

    def build(self, hp):
        model = self._model(hp)
        param = None
        if self.param_name is not None:
            param = hp.Choice(self.param_name, list(self.grid), default=self.grid[0])
        loss = get_loss(
            self.loss, param, sparse=self.sparse, from_logits=self.from_logits, epochs=self.epochs
        )
        model.compile(
            optimizer=_fresh_optimizer(self.optimizer),
            loss=loss,
            metrics=["accuracy", ExpectedCalibrationError(from_logits=self.from_logits)]
            + [
                m if isinstance(m, str) else keras.metrics.deserialize(keras.metrics.serialize(m))
                for m in self.metrics
            ]  # fresh metric objects for every model
            + list(getattr(loss, "schedule_states", ())),
        )
        return model

    def fit(self, hp, model, *args, **kwargs):
        """``model.fit`` (keras-tuner's), or data-parallel under ``distribute.data_parallel``;
        with ``AlphaScheduler`` among the callbacks when the loss has schedules."""
        return distribute.fit(model, *args, **with_scheduler(model, kwargs))


def with_scheduler(model, fit_kwargs):
    """``fit_kwargs`` with ``AlphaScheduler`` added to its callbacks if ``model``'s loss has
    schedules and none is there yet."""
    states = getattr(model.loss, "schedule_states", ())
    callbacks = list(fit_kwargs.get("callbacks") or [])
    if states and not any(isinstance(c, AlphaScheduler) for c in callbacks):
        return {**fit_kwargs, "callbacks": [*callbacks, AlphaScheduler()]}
    return fit_kwargs
