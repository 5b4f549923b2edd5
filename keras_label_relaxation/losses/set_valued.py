"""Label relaxation with set-valued targets, and robust data ambiguation (RDA).

A candidate set ``S`` of classes (partial labels: an annotator who names
several possible classes; or the given label plus the classes the model
already believes in) is relaxed as label relaxation relaxes one class: the
credal set is ``Q_S = {p in the simplex : sum_{k in S} p_k >= 1 - alpha}`` and
the loss is the KL divergence from its nearest member to the prediction
``p_hat``. With ``P = sum_{k in S} p_hat_k`` that member keeps the
prediction's proportions inside and outside ``S``
(``p_k = (1 - alpha) p_hat_k / P`` for ``k in S``,
``p_k = alpha p_hat_k / (1 - P)`` otherwise), so

    L = 0                                                  if P >= 1 - alpha
    L = (1 - alpha) log((1 - alpha) / P) + alpha log(alpha / (1 - P))   otherwise

the label relaxation loss (Lienen & Huellermeier, AAAI 2021, eq. 6) of the
set's total probability. With ``S = {y}`` it is label relaxation.

Robust data ambiguation (Lienen & Huellermeier, "Mitigating Label Noise
through Data Ambiguation", AAAI 2024) takes ``S = {y} ∪ {k : p_hat_k > beta}``
from the model's own prediction (without gradient through the choice of
``S``). We follow the authors' code (julilien/MitigatingLabelNoiseDataAmbiguation
at commit 4903ae6, ``label_smoothing.py``, ``BetaLabelRelaxationLoss``): the
strict ``p_hat_k > beta`` of lines 118/126, the given label always in ``S``
(``logical_or(pred > beta, target)``), zero loss when ``P >= 1 - alpha``
(line 141), the set ``{y}`` during warm-up (line 121), and the linear and
cosine ``beta`` schedules of lines 109 and 114-115 (``LinearAlpha`` and
``CosineAlpha`` here compute the same functions of the epoch). Their loss is
``KL(q || p_hat)`` with the target ``q`` (the nearest member) computed without
gradient (lines 99-139); its value is the closed form above and its gradient
with respect to the logits, ``p_hat - q``, is the closed form's gradient
(the envelope theorem), so the two agree in value and gradient (tested
against a PyTorch formulation of theirs). Where we differ: the authors clamp
``alpha`` up to 1e-3 silently (line 70), we refuse ``alpha`` outside (0, 1);
their evaluation calls the loss without an epoch, i.e. with ``S = {y}``
(line 121), ours evaluates at the ``beta`` of the last trained epoch (as the
``alpha`` schedules do); the closed form needs no division guard for
``P = 0`` (their line 131).
"""

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _numerics, _validation
from keras_label_relaxation.losses import schedules
from keras_label_relaxation.losses._base import RelaxationLoss

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")


def candidate_sets(labels, num_classes, candidates=None):
    """Candidate-set masks ``(..., K)`` from integer labels, plus optional extra candidates.

    Args:
        labels: Integer class ids, shape ``(...)``.
        num_classes: ``K``.
        candidates: Optional 0/1 (or boolean) mask ``(..., K)`` of further
            candidate classes per example.

    Returns:
        A float32 mask with 1 for the label and every candidate.

    Example:
    >>> import numpy as np
    >>> np.asarray(candidate_sets(np.array([0, 2]), 3, np.array([[0, 1, 0], [0, 0, 0]])))
    array([[1., 1., 0.],
           [0., 0., 1.]], dtype=float32)
    """
    num_classes = _validation.check_integer(num_classes, "num_classes", 2)
    mask = ops.one_hot(ops.cast(ops.convert_to_tensor(labels), "int32"), num_classes)
    if candidates is not None:
        candidates = ops.cast(ops.convert_to_tensor(candidates), "float32")
        if tuple(candidates.shape) != tuple(mask.shape):
            raise ValueError(
                "Argument `candidates` must have the shape of the labels plus a class axis of "
                f"{num_classes}. Received: candidates.shape={tuple(candidates.shape)}, "
                f"labels.shape={tuple(mask.shape[:-1])}"
            )
        mask = ops.maximum(mask, ops.cast(candidates > 0, "float32"))
    return ops.cast(mask, "float32")


def _check_sets(mask):
    """In eager mode, every row of ``mask`` must be 0/1 entries with at least one 1."""
    if not _validation.is_concrete(mask):
        return
    rows = ops.convert_to_numpy(mask)
    binary = ((rows == 0) | (rows == 1)).all(axis=-1)
    bad = ~binary | ~(rows.sum(axis=-1) >= 1)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            "Invalid value in `y_true`: every candidate set must be a row of 0/1 entries "
            f"naming at least one class. Received: row {index} = {rows[index].tolist()}"
        )


def _set_targets(y_true, y_pred, validate_args):
    """Candidate-set rows for ``y_pred``: ``(mask, valid)``, ``mask`` boolean.

    A row is valid when its entries are 0 or 1 and at least one is 1 (an
    empty set has no credal set: NaN, or ``ValueError`` with ``validate_args``).
    """
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    _validation.check_dense_shapes(y_true, y_pred)
    if validate_args:
        _check_sets(y_true)
    binary = ops.all(ops.logical_or(ops.equal(y_true, 0.0), ops.equal(y_true, 1.0)), axis=-1)
    valid = ops.logical_and(binary, ops.sum(y_true, axis=-1) >= 1.0)
    return ops.equal(y_true, 1.0), valid


def set_log_probability(mask, y_pred, from_logits, log_p_single=None):
    """``log P(S)``, the log of the predicted probability of each row's candidate set.

    From logits ``logsumexp(z_S) - logsumexp(z)``; from probabilities
    ``log(clip(sum_{k in S} p_k / sum_k p_k, eps, 1 - eps))`` (Keras' clip of
    its cross-entropy, applied to the set's mass). A row whose set is one class
    ``{y}`` gets ``log_p_single``, by default Keras' fused ``log p(y)`` of the
    mask as a one-hot row (what ``LabelRelaxation`` uses), so a one-element set
    gives label relaxation to the last bit.

    Args:
        mask: Boolean ``(..., K)``, the candidate sets.
        y_pred: Logits or probabilities ``(..., K)`` in their compute dtype.
        from_logits: Whether ``y_pred`` holds logits.
        log_p_single: ``log p(y)`` per row, shape ``(...)``, for the rows whose
            set is ``{y}`` (a caller with integer labels passes Keras' fused
            sparse one, as ``SparseLabelRelaxation`` uses); ``None``: computed.

    Returns:
        ``log P(S)``, shape ``(...)`` (``-inf``/NaN rows for empty sets: the
        callers mark them invalid).
    """
    zeros = ops.zeros_like(y_pred)
    one_hot = ops.where(mask, ops.ones_like(y_pred), zeros)
    if log_p_single is None:
        log_p_single = -_numerics.cross_entropy(one_hot, y_pred, from_logits, sparse=False)
    if from_logits:
        neg_inf = ops.full_like(y_pred, -float("inf"))
        inside = ops.logsumexp(ops.where(mask, y_pred, neg_inf), axis=-1)
        general = inside - ops.logsumexp(y_pred, axis=-1)
    else:
        p = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        eps = keras.backend.epsilon()
        general = ops.log(ops.clip(ops.sum(ops.where(mask, p, zeros), axis=-1), eps, 1.0 - eps))
    return ops.where(ops.equal(ops.sum(one_hot, axis=-1), 1.0), log_p_single, general)


def _relax(log_p_set, alpha, valid):
    return _validation.nan_where_invalid(_numerics.relax_log_probability(log_p_set, alpha), valid)


def set_label_relaxation(y_true, y_pred, alpha=0.1, from_logits=False, validate_args=False):
    """Label relaxation for candidate-set targets (partial labels).

    Per sample, with ``P = sum_{k in S} p_hat_k`` the predicted probability of
    the candidate set ``S``:

        L = 0                                              if P >= 1 - alpha
        L = (1 - alpha) log((1 - alpha) / P) + alpha log(alpha / (1 - P))

    the KL divergence from the nearest member of the credal set
    ``{p : sum_{k in S} p_k >= 1 - alpha}`` to ``p_hat``. A one-element set
    ``{y}`` gives ``label_relaxation`` of the one-hot target exactly.

    Args:
        y_true: Candidate-set masks, shape ``(..., K)``, entries 0 or 1, at
            least one 1 per row (``candidate_sets`` builds them from integer
            labels). A row that is not such a set (empty, or an entry other
            than 0/1) gets a NaN loss; with ``validate_args=True`` it raises
            ``ValueError`` in eager mode. A mask whose class axis differs from
            ``y_pred``'s raises ``ValueError`` naming both shapes. Padded
            (Keras-masked) steps must hold valid sets too: a NaN loss times a
            mask of 0 is still NaN.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
            A row of "probabilities" that is not a distribution gets NaN.
        alpha: Float in (0, 1) or a per-sample tensor (entries outside (0, 1):
            NaN).
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise on invalid sets or ``alpha`` in eager mode.

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> sets = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    >>> p = np.array([[0.5, 0.45, 0.05], [0.4, 0.5, 0.1]])
    >>> np.round(np.asarray(set_label_relaxation(sets, p, alpha=0.1)), 4)
    array([0.    , 0.5507])
    """
    y_pred, rows_valid = _validation.predictions(y_pred, from_logits, validate_args)
    mask, valid = _set_targets(y_true, y_pred, validate_args)
    alpha, alpha_valid = _validation.prepare_alpha(alpha, y_pred.dtype, validate_args=validate_args)
    one_hot = ops.where(mask, ops.ones_like(y_pred), ops.zeros_like(y_pred))

    def singletons():  # label_relaxation's one-hot branch, also a branch of a cond as there
        return _numerics.relax_log_probability(
            -_numerics.cross_entropy(one_hot, y_pred, from_logits, sparse=False), alpha
        )

    def sets():
        return _numerics.relax_log_probability(
            set_log_probability(mask, y_pred, from_logits), alpha
        )

    # A batch of one-element sets takes the same compiled branch as LabelRelaxation (JAX runs
    # a cond's branch compiled even in eager calls, which rounds differently from op by op).
    loss = ops.cond(ops.all(ops.equal(ops.sum(one_hot, axis=-1), 1.0)), singletons, sets)
    return _validation.nan_where_invalid(
        loss, _validation.all_valid(valid, rows_valid, alpha_valid)
    )


def _prepare_beta(beta, dtype, validate_args):
    """``(beta, valid)``: a Python float is checked in (0, 1); a tensor (a schedule's state)
    may also be 1, "no class besides the given one" (warm-up); NaN is invalid."""
    if isinstance(beta, (bool, int, float)):
        value = _validation.check_probability_parameter(beta, "beta")
        return ops.convert_to_tensor(value, dtype), None
    beta = ops.cast(ops.convert_to_tensor(beta), dtype)
    if validate_args and _validation.is_concrete(beta):
        value = float(ops.convert_to_numpy(beta))
        if not 0.0 < value <= 1.0:
            raise ValueError(
                "Invalid value for argument `beta`. Expected a float in (0, 1) (1: no "
                f"ambiguation, as in a warm-up). Received: beta={value}"
            )
    return beta, ops.logical_and(beta > 0.0, beta <= 1.0)


def data_ambiguation(
    y_true, y_pred, alpha=0.05, beta=0.6, sparse=True, from_logits=False, validate_args=False
):
    """Robust data ambiguation (RDA): set-valued label relaxation with the model's own candidates.

    Per sample the candidate set is ``S = T ∪ {k : stop_gradient(p_hat_k) > beta}``,
    ``T`` the given label (or the given set of candidates), and the loss is
    ``set_label_relaxation`` of ``S``:

        L = 0                                              if P(S) >= 1 - alpha
        L = (1 - alpha) log((1 - alpha) / P(S)) + alpha log(alpha / (1 - P(S)))

    With ``beta = 1`` no class joins (``p_hat_k > 1`` never holds): label
    relaxation, the warm-up of ``DataAmbiguation``.

    Args:
        y_true: Integer class ids ``(...)`` (``sparse=True``) or one-hot rows /
            candidate-set masks ``(..., K)`` (``sparse=False``). Invalid ids or
            sets give NaN (``validate_args``: ``ValueError`` in eager mode).
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        alpha: Float in (0, 1) or a per-sample tensor.
        beta: The threshold, a float in (0, 1); a scalar tensor (a schedule's
            state) may also be 1 (no ambiguation). NaN (a scheduled loss used
            without ``AlphaScheduler``) gives NaN losses.
        sparse: Whether ``y_true`` holds integer class ids.
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise on invalid targets, ``alpha`` or ``beta`` in eager mode.

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> p = np.array([[0.5, 0.46, 0.04], [0.3, 0.6, 0.1], [0.3, 0.35, 0.35]])
    >>> np.round(np.asarray(data_ambiguation([0, 0, 0], p, alpha=0.05, beta=0.4)), 4)
    array([0.    , 0.0167, 0.9631])
    """
    y_pred, rows_valid = _validation.predictions(y_pred, from_logits, validate_args)
    num_classes = y_pred.shape[-1]
    if sparse:
        labels, valid = _validation.sparse_targets(y_true, y_pred, validate_args)
        given = ops.equal(ops.one_hot(labels, num_classes, dtype=y_pred.dtype), 1.0)
    else:
        given, valid = _set_targets(y_true, y_pred, validate_args)
    alpha, alpha_valid = _validation.prepare_alpha(alpha, y_pred.dtype, validate_args=validate_args)
    beta, beta_valid = _prepare_beta(beta, y_pred.dtype, validate_args)
    if from_logits:
        p_hat = ops.softmax(y_pred, axis=-1)
    else:
        p_hat = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
    mask = ops.logical_or(given, ops.greater(ops.stop_gradient(p_hat), beta))
    # {y} alone: with integer labels Keras' fused sparse log p(y), as SparseLabelRelaxation.
    single = -_numerics.cross_entropy(labels, y_pred, from_logits, sparse=True) if sparse else None
    log_p_set = set_log_probability(mask, y_pred, from_logits, log_p_single=single)
    valid = _validation.all_valid(valid, rows_valid, alpha_valid, beta_valid)
    return _relax(log_p_set, alpha, valid)


@_SERIALIZABLE
class SetLabelRelaxation(RelaxationLoss):
    """Label relaxation for candidate-set targets (partial labels).

    ``L = 0`` if ``P(S) >= 1 - alpha``, else
    ``(1 - alpha) log((1 - alpha) / P(S)) + alpha log(alpha / (1 - P(S)))``,
    ``P(S)`` the predicted probability of the target's candidate set; see
    ``set_label_relaxation``. A one-element set is ``LabelRelaxation``.

    Args:
        alpha: Float in (0, 1), ``"per_sample"`` (one value per example, see
            ``PerSampleAlpha``) or an ``AlphaSchedule``.
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid sets in eager calls.
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Shapes: ``y_true`` (0/1 masks) and ``y_pred`` are ``(..., K)``.

    Example:
    >>> import numpy as np
    >>> loss = SetLabelRelaxation(alpha=0.1)
    >>> sets = candidate_sets(np.array([0, 0]), 3, np.array([[0, 1, 0], [0, 0, 0]]))
    >>> p = np.array([[0.5, 0.45, 0.05], [0.4, 0.5, 0.1]])
    >>> round(float(loss(sets, p)), 4)
    0.2753
    """

    def __init__(
        self,
        alpha=0.1,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="set_label_relaxation",
        dtype=None,
    ):
        super().__init__(
            set_label_relaxation,
            alpha,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )


@_SERIALIZABLE
class AmbiguationThreshold(schedules.AlphaSchedule):
    """RDA's ``beta`` by epoch: 1 (no ambiguation) for ``warmup_epochs``, then ``beta``.

    ``beta`` is a float in (0, 1) or an ``AlphaSchedule`` (``LinearAlpha``,
    ``CosineAlpha``, ...), whose epoch 0 is the first epoch after the warm-up.

    Example:
    >>> threshold = AmbiguationThreshold(schedules.LinearAlpha(0.75, 0.6, epochs=3), 2)
    >>> [round(threshold(e), 2) for e in range(6)]
    [1.0, 1.0, 0.75, 0.7, 0.65, 0.6]
    """

    def __init__(self, beta, warmup_epochs=0):
        super().__init__()
        if isinstance(beta, dict):
            beta = keras.saving.deserialize_keras_object(beta)
        if not isinstance(beta, schedules.AlphaSchedule):
            beta = schedules.ConstantAlpha(_validation.check_probability_parameter(beta, "beta"))
        self.beta = beta
        self.warmup = _validation.check_integer(warmup_epochs, "warmup_epochs", 0)

    def __call__(self, epoch):
        epoch = _validation.check_non_negative_parameter(epoch, "epoch")
        return 1.0 if epoch < self.warmup else self.beta(epoch - self.warmup)

    def get_config(self):
        beta = keras.saving.serialize_keras_object(self.beta)
        return {"beta": beta, "warmup_epochs": self.warmup}


@_SERIALIZABLE
class DataAmbiguation(RelaxationLoss):
    """Robust data ambiguation (RDA; Lienen & Huellermeier, AAAI 2024).

    The target of each example is the set ``S = {y} ∪ {k : p_hat_k > beta}``
    (``p_hat`` without gradient) relaxed as label relaxation relaxes ``{y}``:
    ``L = 0`` if ``P(S) >= 1 - alpha``, else
    ``(1 - alpha) log((1 - alpha) / P(S)) + alpha log(alpha / (1 - P(S)))``.
    During the first ``warmup_epochs`` epochs ``S = {y}`` (label relaxation).
    See ``data_ambiguation`` and the module docstring for the authors' code
    followed and the differences.

    With a ``beta`` schedule or a warm-up the current ``beta`` lives in
    ``beta_state`` (an ``AlphaState`` named ``"beta"``), driven by
    ``AlphaScheduler`` as a scheduled ``alpha`` is: compile with
    ``metrics=[..., *loss.schedule_states]`` and fit with
    ``callbacks=[AlphaScheduler()]``; without the callback ``beta`` is NaN and
    so is the loss.

    Args:
        alpha: Float in (0, 1) (the paper: 0.05), ``"per_sample"`` or an
            ``AlphaSchedule``.
        beta: The threshold, a float in (0, 1) or an ``AlphaSchedule`` over
            the epochs after the warm-up (the paper: ``CosineAlpha(0.75, 0.6,
            epochs)``; CIFAR-100: 0.5).
        warmup_epochs: Epochs of plain label relaxation before ambiguation.
        sparse: Whether targets are integer class ids (default) or one-hot
            rows / candidate-set masks.
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls.
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import keras, numpy as np
    >>> from keras_label_relaxation.losses import AlphaScheduler, CosineAlpha
    >>> loss = DataAmbiguation(alpha=0.05, beta=CosineAlpha(0.75, 0.6, epochs=3),
    ...                        warmup_epochs=1, from_logits=True)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model.compile(optimizer="sgd", loss=loss, metrics=loss.schedule_states)
    >>> history = model.fit(np.ones((8, 4)), np.zeros(8), epochs=3, verbose=0,
    ...                     callbacks=[AlphaScheduler()])
    >>> [round(b, 3) for b in history.history["beta"]]
    [1.0, 0.75, 0.712]
    """

    def __init__(
        self,
        alpha=0.05,
        beta=0.6,
        warmup_epochs=0,
        sparse=True,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="data_ambiguation",
        dtype=None,
    ):
        if isinstance(beta, dict):  # a saved AlphaState, shared with the compiled metrics
            beta = keras.saving.deserialize_keras_object(beta)
        warmup_epochs = _validation.check_integer(warmup_epochs, "warmup_epochs", 0)
        if not isinstance(beta, schedules.AlphaState):
            if isinstance(beta, schedules.AlphaSchedule) or warmup_epochs > 0:
                beta = schedules.AlphaState(AmbiguationThreshold(beta, warmup_epochs), name="beta")
            else:
                beta = _validation.check_probability_parameter(beta, "beta")
        #: The ``AlphaState`` of a scheduled ``beta`` (or of a warm-up), else ``None``.
        self.beta_state = beta if isinstance(beta, schedules.AlphaState) else None
        self.warmup_epochs = warmup_epochs
        super().__init__(
            data_ambiguation,
            alpha,
            name=name,
            reduction=reduction,
            dtype=dtype,
            beta=beta,
            sparse=bool(sparse),
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )

    @property
    def schedule_states(self):
        return super().schedule_states + ([self.beta_state] if self.beta_state else [])

    def call(self, y_true, y_pred):
        if self.beta_state is None:
            return super().call(y_true, y_pred)
        beta = ops.convert_to_tensor(self.beta_state.alpha)
        return self._call_with(y_true, y_pred, beta=beta)

    def get_config(self):
        return {**super().get_config(), "warmup_epochs": self.warmup_epochs}
