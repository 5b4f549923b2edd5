"""Independent float64 NumPy references: explicit loops, no shared code with the package."""

import numpy as np


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def kl(p, p_hat):
    """KL(p || p_hat) with the convention 0 log 0 = 0."""
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / p_hat[mask])))


def project_one_hot(p_hat, y, alpha):
    """The paper's equation (6): the KL projection onto {p : p(y) >= 1 - alpha}."""
    if p_hat[y] >= 1.0 - alpha:
        return p_hat.copy()
    p = alpha * p_hat / (1.0 - p_hat[y])
    p[y] = 1.0 - alpha
    return p


def label_relaxation(labels, p_hat, alpha):
    """Per-sample KL(p_r || p_hat) with p_r from the explicit projection."""
    p_hat = np.asarray(p_hat, dtype=np.float64).reshape(-1, np.shape(p_hat)[-1])
    labels = np.asarray(labels).reshape(-1)
    alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), labels.shape)
    out = [kl(project_one_hot(p, y, a), p) for p, y, a in zip(p_hat, labels, alphas)]
    return np.array(out)


def cross_entropy(labels, p_hat):
    p_hat = np.asarray(p_hat, dtype=np.float64).reshape(-1, np.shape(p_hat)[-1])
    return -np.log(p_hat[np.arange(len(p_hat)), np.asarray(labels).reshape(-1)])


def project_soft_numerically(q, p_hat, alpha):
    """Solve min_p KL(p || p_hat) s.t. p_k >= (1 - alpha) q_k, sum p = 1 with SLSQP."""
    from scipy.optimize import minimize

    q = np.asarray(q, dtype=np.float64)
    p_hat = np.asarray(p_hat, dtype=np.float64)
    lower = (1.0 - alpha) * q
    start = (1.0 - alpha) * q + alpha * p_hat  # feasible
    result = minimize(
        lambda p: float(np.sum(p * np.log(p / p_hat))),
        start,
        jac=lambda p: np.log(p / p_hat) + 1.0,
        method="SLSQP",
        bounds=[(max(lo, 1e-12), 1.0) for lo in lower],
        constraints=[
            {"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": lambda p: np.ones_like(p)}
        ],
        options={"ftol": 1e-13, "maxiter": 1000},
    )
    # Status 8 ("positive directional derivative in line search") means no further
    # progress at machine precision; the feasibility checks below still apply.
    assert result.success or result.status == 8, result.message
    p = result.x
    assert abs(p.sum() - 1.0) < 1e-9 and np.all(p >= lower - 1e-9)
    return p


def bernoulli_relaxation(targets, p, alpha):
    """Binary label relaxation per output: KL from the set's boundary, 0 inside."""
    t = np.asarray(targets, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    out = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        pp = p[idx] if t[idx] == 1 else 1.0 - p[idx]
        if pp < 1.0 - alpha:
            boundary = np.array([1.0 - alpha, alpha])
            out[idx] = kl(boundary, np.array([pp, 1.0 - pp]))
    return out.mean(axis=-1)


def ece_loop(labels, probs, num_bins, weights=None):
    """Top-label ECE by an explicit per-sample loop over equal-width bins.

    ``weights``: optional per-sample weights (a weight counts like repeating
    the sample; weight 0 drops it).
    """
    if weights is None:
        weights = [1.0] * len(labels)
    bins = [[] for _ in range(num_bins)]
    for y, p, w in zip(labels, probs, weights):
        c = max(p)
        b = min(int(c * num_bins), num_bins - 1)
        bins[b].append((c, float(np.argmax(p) == y), float(w)))
    total_weight = float(sum(float(w) for w in weights))
    total = 0.0
    for members in bins:
        n = sum(w for _, _, w in members)
        if n > 0:
            conf = sum(w * c for c, _, w in members) / n
            acc = sum(w * a for _, a, w in members) / n
            total += n / total_weight * abs(acc - conf)
    return total


def brier_loop(labels, probs, weights=None):
    """Weighted mean of sum_k (p_k - [k == y])^2, one sample at a time."""
    if weights is None:
        weights = [1.0] * len(labels)
    total, count = 0.0, 0.0
    for y, p, w in zip(labels, probs, weights):
        total += w * sum((float(pk) - float(k == y)) ** 2 for k, pk in enumerate(p))
        count += w
    return total / count


def _units(labels, probs, weights, mode):
    """Per curve, a list of (confidence, outcome, weight) per sample."""
    probs = np.asarray(probs, dtype=np.float64)
    weights = np.ones(len(probs)) if weights is None else np.asarray(weights, np.float64)
    if mode == "top_label":
        return [[(max(p), float(np.argmax(p) == y), w) for y, p, w in zip(labels, probs, weights)]]
    return [
        [(p[k], float(y == k), w) for y, p, w in zip(labels, probs, weights)]
        for k in range(probs.shape[1])
    ]


def _bin_members(units, num_bins, binning):
    bins = [[] for _ in range(num_bins)]
    if binning == "equal_width":
        for c, a, w in units:
            bins[min(int(c * num_bins), num_bins - 1)].append((c, a, w))
        return bins
    total = sum(w for _, _, w in units)
    ordered = sorted(units, key=lambda unit: unit[0])
    before, group_start, previous = 0.0, 0.0, None
    for c, a, w in ordered:
        if c != previous:  # a new group of equal confidences starts here
            group_start, previous = before, c
        bins[min(int(np.floor(num_bins * group_start / total)), num_bins - 1)].append((c, a, w))
        before += w
    return bins


def binned_error_loop(labels, probs, num_bins, norm, binning, debiased, mode, weights=None):
    """Calibration error by explicit loops; debiased l1 with scipy's folded normal.

    Debiasing uses each bin's effective size ``(sum w)^2 / sum w^2``; in debiased l2 a bin
    of a single sample adds 0 (Kumar et al.'s ``unbiased_l2_ce``)."""
    from scipy.stats import foldnorm

    errors = []
    for units in _units(labels, probs, weights, mode):
        total = sum(w for _, _, w in units)
        plugin, square, variance_term, folded, worst = 0.0, 0.0, 0.0, 0.0, 0.0
        for members in _bin_members(units, num_bins, binning):
            n = sum(w for _, _, w in members)
            if n == 0:
                continue
            acc = sum(w * a for _, a, w in members) / n
            conf = sum(w * c for c, _, w in members) / n
            plugin += n / total * abs(acc - conf)
            worst = max(worst, abs(acc - conf))
            # Kish's effective size: the count for equal weights of any scale.
            size = n**2 / sum(w**2 for _, _, w in members)
            several = sum(w > 0 for _, _, w in members) >= 2
            if several or not debiased:  # a single sample's bin adds 0 to debiased l2
                square += n / total * (acc - conf) ** 2
            if several:
                variance_term += n / total * acc * (1 - acc) / (size - 1)
            std = np.sqrt(acc * (1 - acc) / size)
            mean_abs = (
                abs(acc - conf) if std == 0 else foldnorm(abs(acc - conf) / std, scale=std).mean()
            )
            folded += n / total * mean_abs
        if norm == "max":
            errors.append(worst)
        elif norm == "l2":
            errors.append(
                np.sqrt(max(square - variance_term, 0.0)) if debiased else np.sqrt(square)
            )
        else:
            errors.append(2 * plugin - folded if debiased else plugin)
    if mode == "top_label":
        return errors[0]
    if norm == "l2":
        return float(np.sqrt(np.mean(np.square(errors))))
    return float(np.max(errors)) if norm == "max" else float(np.mean(errors))


def ks_loop(labels, probs, weights=None):
    """Top-label KS: cumulative (confidence - correct) along sorted confidences, at group ends."""
    (units,) = _units(labels, probs, weights, "top_label")
    ordered = sorted(units, key=lambda unit: unit[0])
    total = sum(w for _, _, w in units)
    running, best = 0.0, 0.0
    for i, (c, a, w) in enumerate(ordered):
        running += w * (c - a)
        if i + 1 == len(ordered) or ordered[i + 1][0] != c:
            best = max(best, abs(running))
    return best / total


def smooth_ece_loop(labels, probs, sigma, weights=None, points=1000):
    """smECE at a fixed bandwidth: reflected Gaussian kernel evaluated point by point."""
    (units,) = _units(labels, probs, weights, "top_label")
    numerator = denominator = 0.0
    for t in np.linspace(0.0, 1.0, points):
        g = d = 0.0
        for c, a, w in units:
            k = sum(np.exp(-0.5 * ((t - x) / sigma) ** 2) for x in (c, -c, 2.0 - c))
            g += w * (c - a) * k
            d += w * k
        numerator += abs(g)
        denominator += d
    return numerator / denominator
