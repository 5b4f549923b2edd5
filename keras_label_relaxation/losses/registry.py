"""One registry of the paper's losses, shared by the tuner and the experiment runner."""

import keras

from keras_label_relaxation import _validation
from keras_label_relaxation.losses.baselines import (
    ConfidencePenalty,
    SparseCategoricalFocalCrossentropy,
    SparseConfidencePenalty,
    SparseLabelSmoothing,
)
from keras_label_relaxation.losses.label_relaxation import LabelRelaxation, SparseLabelRelaxation

#: The loss names, each with the name of its parameter (``None``: no parameter).
LOSS_PARAMETERS = {
    "cross_entropy": None,
    "label_smoothing": "alpha",
    "confidence_penalty": "beta",
    "focal": "gamma",
    "label_relaxation": "alpha",
}

#: Short names (the paper's abbreviations) accepted by ``get_loss``.
LOSS_ALIASES = {
    "ce": "cross_entropy",
    "ls": "label_smoothing",
    "cp": "confidence_penalty",
    "fl": "focal",
    "lr": "label_relaxation",
}

_DEFAULTS = {
    "label_smoothing": 0.1,
    "confidence_penalty": 1.0,
    "focal": 2.0,
    "label_relaxation": 0.1,
}


def canonical_loss_name(name):
    """Return the full loss name for ``name`` or one of its aliases."""
    key = str(name).lower()
    key = LOSS_ALIASES.get(key, key)
    if key not in LOSS_PARAMETERS:
        valid = ", ".join(list(LOSS_PARAMETERS) + list(LOSS_ALIASES))
        raise ValueError(f"Unknown loss name: {name!r}. Valid names: {valid}")
    return key


def get_loss(name, param=None, sparse=False, from_logits=False):
    """Build one of the paper's losses by name.

    - ``cross_entropy`` (``ce``), no parameter: ``keras.losses.CategoricalCrossentropy``;
      sparse: ``keras.losses.SparseCategoricalCrossentropy``.
    - ``label_smoothing`` (``ls``), alpha in (0, 1):
      ``keras.losses.CategoricalCrossentropy(label_smoothing=alpha)``; sparse:
      ``SparseLabelSmoothing``.
    - ``confidence_penalty`` (``cp``), beta >= 0: ``ConfidencePenalty``; sparse:
      ``SparseConfidencePenalty``.
    - ``focal`` (``fl``), gamma >= 0:
      ``keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=gamma)``; sparse:
      ``SparseCategoricalFocalCrossentropy(alpha=1.0, gamma=gamma)``.
    - ``label_relaxation`` (``lr``), alpha in (0, 1): ``LabelRelaxation``; sparse:
      ``SparseLabelRelaxation``.

    Args:
        name: A loss name or alias from the table.
        param: The loss' parameter; ``None`` takes the default (alpha 0.1,
            beta 1.0, gamma 2.0). Cross-entropy takes none.
        sparse: Whether targets are integer class ids.
        from_logits: Whether the model outputs logits.

    Returns:
        A ``keras.losses.Loss``.

    Example:
    >>> loss = get_loss("label_relaxation", 0.05, sparse=True, from_logits=True)
    >>> type(loss).__name__, loss.get_config()["alpha"]
    ('SparseLabelRelaxation', 0.05)
    """
    name = canonical_loss_name(name)
    param_name = LOSS_PARAMETERS[name]
    if param_name is None:
        if param is not None:
            raise ValueError(
                f"Invalid value for argument `param`. Loss {name!r} takes no parameter. "
                f"Received: param={param!r}"
            )
        cls = (
            keras.losses.SparseCategoricalCrossentropy
            if sparse
            else keras.losses.CategoricalCrossentropy
        )
        return cls(from_logits=from_logits)
    if param is None:
        param = _DEFAULTS[name]
    if name == "label_relaxation":
        cls = SparseLabelRelaxation if sparse else LabelRelaxation
        return cls(alpha=param, from_logits=from_logits)
    if name == "label_smoothing":
        alpha = _validation.check_probability_parameter(param, "alpha")
        if sparse:
            return SparseLabelSmoothing(alpha=alpha, from_logits=from_logits)
        return keras.losses.CategoricalCrossentropy(label_smoothing=alpha, from_logits=from_logits)
    if name == "confidence_penalty":
        cls = SparseConfidencePenalty if sparse else ConfidencePenalty
        return cls(beta=param, from_logits=from_logits)
    gamma = _validation.check_non_negative_parameter(param, "gamma")
    if sparse:
        return SparseCategoricalFocalCrossentropy(alpha=1.0, gamma=gamma, from_logits=from_logits)
    return keras.losses.CategoricalFocalCrossentropy(
        alpha=1.0, gamma=gamma, from_logits=from_logits
    )
