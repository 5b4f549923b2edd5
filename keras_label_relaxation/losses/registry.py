"""One registry of the losses the tuner and the experiment runner build by name.

The paper's five losses, and the label-noise losses compared with them:
robust data ambiguation (Lienen & Huellermeier, AAAI 2024), generalized
cross-entropy (Zhang & Sabuncu, 2018) and symmetric cross-entropy (Wang et
al., 2019).
"""

import keras

from keras_label_relaxation import _validation
from keras_label_relaxation.losses.baselines import (
    ConfidencePenalty,
    SparseCategoricalFocalCrossentropy,
    SparseConfidencePenalty,
    SparseLabelSmoothing,
)
from keras_label_relaxation.losses.label_relaxation import LabelRelaxation, SparseLabelRelaxation
from keras_label_relaxation.losses.robust import (
    GeneralizedCrossEntropy,
    SparseGeneralizedCrossEntropy,
    SparseSymmetricCrossEntropy,
    SymmetricCrossEntropy,
)
from keras_label_relaxation.losses.schedules import CosineAlpha
from keras_label_relaxation.losses.set_valued import DataAmbiguation

#: The loss names, each with the name of its parameter (``None``: no parameter).
LOSS_PARAMETERS = {
    "cross_entropy": None,
    "label_smoothing": "alpha",
    "confidence_penalty": "beta",
    "focal": "gamma",
    "label_relaxation": "alpha",
    "data_ambiguation": "alpha",
    "generalized_cross_entropy": "q",
    "symmetric_cross_entropy": "alpha",
}

#: Short names (the paper's abbreviations) accepted by ``get_loss``.
LOSS_ALIASES = {
    "ce": "cross_entropy",
    "ls": "label_smoothing",
    "cp": "confidence_penalty",
    "fl": "focal",
    "lr": "label_relaxation",
    "rda": "data_ambiguation",
    "gce": "generalized_cross_entropy",
    "sce": "symmetric_cross_entropy",
}

_DEFAULTS = {
    "label_smoothing": 0.1,
    "confidence_penalty": 1.0,
    "focal": 2.0,
    "label_relaxation": 0.1,
    "data_ambiguation": 0.05,
    "generalized_cross_entropy": 0.7,
    "symmetric_cross_entropy": 0.1,
}

#: RDA's threshold in the paper (supplement A.3): cosine from 0.75 to 0.6 over the training.
RDA_BETA = (0.75, 0.6)


def canonical_loss_name(name):
    """Return the full loss name for ``name`` or one of its aliases."""
    key = str(name).lower()
    key = LOSS_ALIASES.get(key, key)
    if key not in LOSS_PARAMETERS:
        valid = ", ".join(list(LOSS_PARAMETERS) + list(LOSS_ALIASES))
        raise ValueError(f"Unknown loss name: {name!r}. Valid names: {valid}")
    return key


def get_loss(name, param=None, sparse=False, from_logits=False, epochs=None):
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
    - ``data_ambiguation`` (``rda``), alpha in (0, 1): ``DataAmbiguation`` with
      the paper's threshold ``beta = CosineAlpha(0.75, 0.6, epochs)`` (a
      constant 0.6 when ``epochs`` is ``None``), no warm-up.
    - ``generalized_cross_entropy`` (``gce``), q in (0, 1]:
      ``GeneralizedCrossEntropy``; sparse: ``SparseGeneralizedCrossEntropy``.
    - ``symmetric_cross_entropy`` (``sce``), alpha >= 0 (the weight of CE; the
      reverse CE's weight beta is 1 and A = -4, Wang et al.'s CIFAR-10 setting):
      ``SymmetricCrossEntropy``; sparse: ``SparseSymmetricCrossEntropy``.

    Args:
        name: A loss name or alias from the table.
        param: The loss' parameter; ``None`` takes the default (LS/LR alpha
            0.1, beta 1.0, gamma 2.0, RDA alpha 0.05, q 0.7, SCE alpha 0.1).
            Cross-entropy takes none.
        sparse: Whether targets are integer class ids.
        from_logits: Whether the model outputs logits.
        epochs: The training's epochs, over which RDA's threshold follows the
            paper's schedule (its loss then has a ``schedule_states`` entry:
            compile it as a metric and fit with ``AlphaScheduler``;
            ``tuning.LossHyperModel`` does both). Ignored by the other losses.

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
    if name == "data_ambiguation":
        beta = RDA_BETA[1] if epochs is None else CosineAlpha(*RDA_BETA, epochs=epochs)
        return DataAmbiguation(alpha=param, beta=beta, sparse=sparse, from_logits=from_logits)
    if name == "generalized_cross_entropy":
        cls = SparseGeneralizedCrossEntropy if sparse else GeneralizedCrossEntropy
        return cls(q=param, from_logits=from_logits)
    if name == "symmetric_cross_entropy":
        cls = SparseSymmetricCrossEntropy if sparse else SymmetricCrossEntropy
        return cls(alpha=param, beta=1.0, from_logits=from_logits)
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
