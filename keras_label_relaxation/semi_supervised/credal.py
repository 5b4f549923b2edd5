"""Credal pseudo-labels (Lienen & Huellermeier, "Credal Self-Supervised Learning", NeurIPS 2021).

For an unlabelled example with weak-view prediction ``p`` (a softmax, no
gradient), credal self-supervised learning (CSSL) does not commit to one
pseudo-label. It builds the credal set ``{q : q(k) >= 1 - alpha}`` around
``k = argmax p`` with an imprecision that shrinks as the model gets more
confident, after distribution alignment (ReMixMatch's, without sharpening):

    p~ = normalize(p (1e-6 + p_data) / (1e-6 + p_model))
    alpha = clip(1 - max_c p~(c), epsilon, 1 - epsilon)

``p_model`` is the mean weak-view prediction over a window of recent batches
and ``p_data`` the class prior (uniform unless given). The strong view is then
trained with the label relaxation loss towards that set. We follow the
authors' code (github.com/julilien/CSSL, ``cssl.py``): ``k`` from the
un-aligned prediction, ``alpha`` from the aligned one, a first-in-first-out
window of 128 batch means, no confidence threshold. We change one thing:
``alpha`` is clipped to ``[epsilon, 1 - epsilon]`` (the code lets it reach 0,
where its clipped KL becomes cross-entropy; our losses give NaN outside (0, 1)).

The hard pseudo-label baseline (FixMatch) uses the same ``k`` with
cross-entropy, only where ``max_c p(c) >= threshold`` (0.95), and no alignment.
"""

from keras import ops

#: Smallest imprecision of a credal pseudo-label (the loss needs alpha in (0, 1)).
ALPHA_EPSILON = 1e-6
#: Added to both priors of the alignment ratio, as in the authors' code.
ALIGNMENT_EPSILON = 1e-6


def credal_targets(weak_logits, model_prior, data_prior=None, epsilon=ALPHA_EPSILON):
    """Credal pseudo-labels ``(k, alpha)`` from weak-view logits (no gradient flows back).

    Args:
        weak_logits: Logits of the weak views, ``(N, K)``.
        model_prior: ``p_model``, the running mean prediction, ``(K,)``.
        data_prior: ``p_data``, the class prior ``(K,)``; ``None``: uniform.
        epsilon: ``alpha`` is clipped to ``[epsilon, 1 - epsilon]``.

    Returns:
        ``(k, alpha)``: int32 classes ``argmax p`` ``(N,)`` and imprecisions
        ``1 - max p~`` ``(N,)`` in the logits' float dtype.

    Example:
    >>> import numpy as np
    >>> k, alpha = credal_targets(np.log([[0.7, 0.2, 0.1]]), np.array([0.5, 0.25, 0.25]))
    >>> int(k[0]), round(float(alpha[0]), 4)
    (0, 0.4615)
    """
    p = ops.stop_gradient(ops.softmax(ops.convert_to_tensor(weak_logits), axis=-1))
    k = ops.cast(ops.argmax(p, axis=-1), "int32")
    model_prior = ops.convert_to_tensor(model_prior, dtype=p.dtype)
    data_prior = (
        ops.full_like(model_prior, 1.0 / p.shape[-1])
        if data_prior is None
        else ops.convert_to_tensor(data_prior, dtype=p.dtype)
    )
    ratio = (ALIGNMENT_EPSILON + data_prior) / (ALIGNMENT_EPSILON + model_prior)
    aligned = p * ratio
    aligned = aligned / ops.sum(aligned, axis=-1, keepdims=True)
    alpha = ops.clip(1.0 - ops.max(aligned, axis=-1), epsilon, 1.0 - epsilon)
    return k, ops.stop_gradient(alpha)


def hard_pseudo_labels(weak_logits, threshold):
    """FixMatch's pseudo-labels ``(k, mask)``: ``argmax p`` and ``max p >= threshold``.

    Example:
    >>> import numpy as np
    >>> k, mask = hard_pseudo_labels(np.log([[0.97, 0.02, 0.01], [0.5, 0.4, 0.1]]), 0.95)
    >>> np.asarray(k).tolist(), np.asarray(mask).tolist()
    ([0, 0], [True, False])
    """
    p = ops.stop_gradient(ops.softmax(ops.convert_to_tensor(weak_logits), axis=-1))
    k = ops.cast(ops.argmax(p, axis=-1), "int32")
    return k, ops.max(p, axis=-1) >= threshold
