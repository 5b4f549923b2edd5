# ruff: noqa: E501  (long f-strings of measurement output)
"""How keras_label_relaxation's calibration estimators differ on purpose from peer packages.

Self-contained: ``python benchmarks/bench_peers.py`` (about 1.5 min on 2 cores;
``--quick`` for N = 2,000 only, about 45 s). Every data set is seeded. The script prints the
values, the absolute differences and, for each peer, an explicit NumPy oracle of the peer's
rule, so that each difference is attributed to one named cause. Peers: relplot 1.0.3
(``smECE``), netcal 1.4.0 (``ACE(equal_intervals=False)``), torchmetrics 1.9.0
(``multiclass_calibration_error``), uncertainty-calibration 0.1.4 (``get_equal_bins``), and
Nixon et al. 2019's class-wise ACE as a NumPy oracle.

Data sets (K = 10 classes, N in {2000, 10000}, seeds 0 and 1):
  calibrated     logits 2 z, probs softmax, labels drawn from probs
  overconfident  labels from softmax(1.5 z), predictions softmax(3 z) (temperature 0.5)
  saturated      40% one-hot rows (confidence exactly 1.0), 30% 1 - 10^U(-7,-2),
                 30% overconfident rows; the 70% near 1.0 are right with probability 0.97
  saturated_mixed  40% one-hot rows right with probability 0.97 (overconfident), 30% at
                 1 - 10^U(-3,-1) (in [0.9, 0.999]) always right (underconfident), 30% calibrated
                 softmax rows: the rest of the top 15-bin is underconfident, the 1.0 group not
  ties           top confidence on the 0.05 grid {0.15, ..., 1.0} (about 18 distinct values, so
                 thousands of ties; 0.2, 0.4, 0.6, 0.8 and 1.0 are 15-bin edges), the rest spread
                 evenly; right with probability 0.9 c
  rounded        calibrated, with the top probability rounded to 3 decimals (the rounding moved
                 to the runner-up class): a few ties per value, as a model reporting 3 digits
Plus, for (b) only, N = 3000 = 15 x 200 (equal-mass bins of exactly N / 15).
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

K = 10
BINS = 15


# --- data ---------------------------------------------------------------------------------


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _draw(rng, p):
    u = rng.random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[1] - 1)


def _rows(rng, c, spread):
    """Rows with top class ``t`` at ``c`` and ``1 - c`` over the others (uniform or Dirichlet)."""
    n = c.shape[0]
    top = rng.integers(0, K, n)
    rest = (
        np.full((n, K - 1), 1.0 / (K - 1)) if spread == "even" else rng.dirichlet(np.ones(K - 1), n)
    )
    probs = np.empty((n, K))
    others = (1.0 - c)[:, None] * rest
    for i in range(n):  # small n; explicit for clarity
        probs[i] = np.insert(others[i], top[i], c[i])
    return probs, top


def _labels_from_accuracy(rng, top, accuracy):
    right = rng.random(top.shape[0]) < accuracy
    wrong = (top + rng.integers(1, K, top.shape[0])) % K
    return np.where(right, top, wrong)


def make(name, n, seed):
    rng = np.random.default_rng(seed)
    if name == "calibrated":
        probs = _softmax(2.0 * rng.standard_normal((n, K)))
        return _draw(rng, probs), probs
    if name == "overconfident":
        z = rng.standard_normal((n, K))
        return _draw(rng, _softmax(1.5 * z)), _softmax(3.0 * z)
    if name == "saturated":
        kind = rng.choice(3, size=n, p=[0.4, 0.3, 0.3])
        c = np.where(kind == 0, 1.0, 1.0 - 10.0 ** rng.uniform(-7, -2, n))
        probs, top = _rows(rng, c, "dirichlet")
        labels = _labels_from_accuracy(rng, top, 0.97)
        z = rng.standard_normal((n, K))
        over = _softmax(3.0 * z)
        over_labels = _draw(rng, _softmax(1.5 * z))
        probs[kind == 2], labels[kind == 2] = over[kind == 2], over_labels[kind == 2]
        return labels, probs
    if name == "saturated_mixed":
        kind = rng.choice(3, size=n, p=[0.4, 0.3, 0.3])
        c = np.where(kind == 0, 1.0, 1.0 - 10.0 ** rng.uniform(-3, -1, n))
        probs, top = _rows(rng, c, "dirichlet")
        labels = _labels_from_accuracy(rng, top, np.where(kind == 0, 0.97, 1.0))
        calibrated = _softmax(2.0 * rng.standard_normal((n, K)))
        calibrated_labels = _draw(rng, calibrated)
        probs[kind == 2], labels[kind == 2] = calibrated[kind == 2], calibrated_labels[kind == 2]
        return labels, probs
    if name == "rounded":
        probs = _softmax(2.0 * rng.standard_normal((n, K)))
        labels = _draw(rng, probs)
        order = np.argsort(probs, -1)
        top, second = order[:, -1], order[:, -2]
        rows = np.arange(n)
        c = probs[rows, top]
        rounded = np.round(c, 3)
        probs[rows, second] += c - rounded
        probs[rows, top] = rounded
        return labels, probs
    if name == "ties":
        c = np.clip(np.round(20.0 * rng.beta(5.0, 1.5, n)) / 20.0, 0.15, 1.0)
        probs, top = _rows(rng, c, "even")
        return _labels_from_accuracy(rng, top, 0.9 * c), probs
    raise ValueError(name)


DATASETS = ("calibrated", "overconfident", "saturated", "saturated_mixed", "ties", "rounded")


def top_label(labels, probs):
    return probs.max(-1), (probs.argmax(-1) == labels).astype(np.float64)


# --- NumPy oracles of the peers' rules ------------------------------------------------------


def ece_equal_width(conf, correct, top_edge_bin=False):
    """Our 15-bin ECE: bin min(floor(15 c), 14). ``top_edge_bin``: c == 1.0 gets a bin 15."""
    ids = np.minimum((conf * BINS).astype(int), BINS - 1)
    if top_edge_bin:
        ids = np.where(conf == 1.0, BINS, ids)
    gap = np.bincount(ids, correct - conf, minlength=BINS + 1)
    return np.abs(gap).sum() / conf.shape[0]


def torchmetrics_rule_ece(probs, correct):
    """torchmetrics' rule: conf = max p cast to float32, bin bucketize(conf, linspace(0, 1, 16,
    float32), right=True) - 1 (so c == 1.0 is bin 15, a 16th bin), count-weighted |acc - conf|."""
    import torch

    conf32 = probs.max(-1).astype(np.float32)
    edges = torch.linspace(0, 1, BINS + 1, dtype=torch.float32).numpy()
    ids = np.searchsorted(edges, conf32, side="right") - 1
    gap = np.bincount(ids, correct - conf32.astype(np.float64), minlength=BINS + 1)
    ours_ids = np.minimum((conf32.astype(np.float64) * BINS).astype(int), BINS - 1)
    return (
        np.abs(gap).sum() / conf32.shape[0],
        conf32,
        int(np.sum((ids != ours_ids) & (conf32 != 1.0))),
    )


def equal_mass_top_label(conf, correct, r=BINS, ties="first"):
    """Top-label equal-mass ECE, our boundary rule: sorted unit with C units before it goes to bin
    min(floor(r C / N), r - 1). ``ties="first"``: a group of equal confidences takes the bin of
    its first unit (ours); ``"split"``: ties broken by the (stable) sort order."""
    order = np.argsort(conf, kind="stable")
    c, y = conf[order], correct[order]
    before = np.arange(c.shape[0])
    if ties == "first":
        start = np.r_[True, c[1:] != c[:-1]]
        before = np.maximum.accumulate(np.where(start, before, 0))
    ids = np.minimum(r * before // c.shape[0], r - 1)
    return np.abs(np.bincount(ids, y - c, minlength=r)).sum() / c.shape[0]


def array_split_top_label(conf, correct, r=BINS):
    """Equal-count bins by np.array_split of the sorted samples (the first N mod r bins one
    larger), ties split by sort order, count-weighted."""
    order = np.argsort(conf, kind="stable")
    return sum(abs((correct[i] - conf[i]).sum()) for i in np.array_split(order, r)) / conf.shape[0]


def netcal_rule_ace(conf, correct, r=BINS):
    """netcal's ACE rule: conf clipped to [eps, 1 - eps], np.quantile edges (first and last set
    to 0 and 1), histogram bins [lo, hi) (last closed), the unweighted mean of |acc - conf| over
    the non-empty bins."""
    eps = np.finfo(np.float64).eps
    x = np.clip(conf, eps, 1.0 - eps)
    edges = np.quantile(x, np.linspace(0, 1, r + 1))
    edges[0], edges[-1] = 0.0, 1.0
    ids = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, r - 1)
    n = np.bincount(ids, minlength=r)
    acc = np.bincount(ids, correct, minlength=r)
    cs = np.bincount(ids, x, minlength=r)
    full = n > 0
    return np.mean(np.abs(acc[full] / n[full] - cs[full] / n[full]))


def nixon_ace(labels, probs, r=BINS):
    """Nixon et al. 2019 ("Measuring Calibration in Deep Learning"), adaptive calibration error:
    for each class k the N predictions p_k are sorted and cut into R ranges of (about) N / R
    predictions (np.array_split); ACE = 1/(K R) sum_k sum_r |acc(r, k) - conf(r, k)|, with
    acc(r, k) the share of range r whose label is k and conf(r, k) the mean p_k in it."""
    n, k = probs.shape
    total = 0.0
    for cls in range(k):
        order = np.argsort(probs[:, cls], kind="stable")
        hit = (labels == cls).astype(np.float64)
        for idx in np.array_split(order, r):
            total += abs(hit[idx].mean() - probs[idx, cls].mean())
    return total / (k * r)


def smooth_ece_reference(conf, correct, sigma, points=1000, relplot_rule=False):
    """smECE_sigma = sum_t |g(t)| / sum_t d(t) on ``points`` points of [0, 1] with the Gaussian
    kernel reflected at 0 and 1 at the exact sample positions (points=1000: ours; 10001: a
    near-continuous reference).

    ``relplot_rule``: relplot 1.0.3's two departures from that: (1) it rounds each sample
    linearly onto a grid of G = max(2000, round(20 / sigma)) // 2 + 1 nodes and mirrors the grid
    without repeating its end nodes, so the share of a sample that lands on the node at 1.0
    (all of a sample at exactly 1.0, a share (c - (G-2)/(G-1)) (G-1) of one within 1 / (G-1) of
    it) is reflected zero times instead of once: it weighs 1/2 where the reflected kernel gives
    it weight 2 phi; (2) it evaluates on max(200, round(10 / sigma)) points."""
    if relplot_rule:
        grid = max(2000, round(20 / sigma)) // 2 + 1
        points = max(200, round(10 / sigma))
        weight = 1.0 - np.clip(conf * (grid - 1) - (grid - 2), 0.0, 1.0) / 2.0
    else:
        weight = np.ones_like(conf)
    t = np.linspace(0.0, 1.0, points)
    residual = weight * (conf - correct)
    g = np.zeros(points)
    d = np.zeros(points)
    for start in range(0, conf.shape[0], 500):
        part = slice(start, start + 500)
        c = conf[part]
        kern = sum(
            np.exp(-0.5 * ((t[:, None] - im[None, :]) / sigma) ** 2) for im in (c, -c, 2 - c)
        )
        g += kern @ residual[part]
        d += kern @ weight[part]
    return np.abs(g).sum() / d.sum()


def nudge_ones(probs, delta=2e-3):
    """Every row whose top probability is exactly 1.0 moves ``delta`` to another class (2e-3:
    out of relplot's last grid cell, [0.999, 1])."""
    probs = probs.copy()
    rows = np.flatnonzero(probs.max(-1) == 1.0)
    top = probs[rows].argmax(-1)
    probs[rows, top] -= delta
    probs[rows, (top + 1) % probs.shape[1]] += delta
    return probs


# --- measurement -----------------------------------------------------------------------------


class Table:
    """Absolute differences by (key, data set, N); ``summary`` prints max and median over all
    runs and the max per data set and N."""

    def __init__(self):
        self.values = {}
        self.n = None

    def add(self, key, name, value):
        self.values.setdefault(key, {}).setdefault((name, self.n), []).append(float(value))

    def summary(self, key, text):
        if key not in self.values:
            return
        per_set = self.values[key]
        everything = np.concatenate([np.asarray(v) for v in per_set.values()])
        print(f"{text}: max {everything.max():.2e}, median {np.median(everything):.2e}")
        names = list(dict.fromkeys(name for name, _ in per_set))
        parts = []
        for name in names:
            by_n = "/".join(
                f"{max(per_set[(name, n)]):.1e}"
                for n in sorted({m for nm, m in per_set if nm == name})
            )
            parts.append(f"{name} {by_n}")
        print(f"      max per set (N ascending): {', '.join(parts)}")


def main():
    from importlib.metadata import version

    import calibration
    import keras
    import netcal
    import relplot
    import torch
    import torchmetrics
    from netcal.metrics import ACE
    from torchmetrics.functional.classification import multiclass_calibration_error

    from keras_label_relaxation.metrics import calibration_error, smooth_calibration_error

    torch.set_num_threads(2)
    print(
        f"keras {keras.__version__} ({keras.backend.backend()}), relplot {version('relplot')}, "
        f"netcal {netcal.__version__}, torchmetrics {torchmetrics.__version__}, torch {torch.__version__}"
    )
    sizes = (2000,) if "--quick" in sys.argv else (2000, 10000)
    seeds = (0, 1)
    table = Table()
    netcal_errors = []

    for name in DATASETS:
        for n in sizes:
            table.n = n
            for seed in seeds:
                t0 = time.time()
                labels, probs = make(name, n, seed)
                conf, correct = top_label(labels, probs)
                print(
                    f"\n== {name} N={n} seed={seed}: accuracy {correct.mean():.3f}, mean conf "
                    f"{conf.mean():.3f}, conf == 1.0: {int(np.sum(conf == 1.0))}, conf >= 0.999: "
                    f"{int(np.sum(conf >= 0.999))}, distinct conf: {np.unique(conf).size}"
                )

                # (a) smooth ECE vs relplot.smECE
                ours, s_ours = smooth_calibration_error(labels, probs, return_bandwidth=True)
                peer, s_peer = relplot.smECE(conf, correct, return_width=True)
                ours_at = smooth_calibration_error(labels, probs, bandwidth=s_peer)
                peer_at = relplot.smECE_sigma(conf, correct, s_peer)
                rule = smooth_ece_reference(conf, correct, s_peer, relplot_rule=True)
                table.add("a_auto", name, abs(ours - peer))
                table.add("a_sigma", name, abs(s_ours - s_peer))
                table.add("a_fixed", name, abs(ours_at - peer_at))
                table.add("a_rule", name, abs(peer_at - rule))
                print(
                    f"(a) smECE ours {ours:.6f} (sigma {s_ours:.6f}), relplot {peer:.6f} (sigma "
                    f"{s_peer:.6f}): |diff| {abs(ours - peer):.2e}; at relplot's sigma ours {ours_at:.6f}, "
                    f"relplot {peer_at:.6f}: |diff| {abs(ours_at - peer_at):.2e}; relplot-rule oracle "
                    f"{rule:.6f} (|relplot - oracle| {abs(peer_at - rule):.1e})"
                )
                if n == 2000:
                    fine = smooth_ece_reference(conf, correct, s_peer, points=10001)
                    table.add("a_fine_ours", name, abs(ours_at - fine))
                    table.add("a_fine_relplot", name, abs(peer_at - fine))
                    print(
                        f"    near-continuous reference (10001 points) {fine:.6f}: ours off "
                        f"{abs(ours_at - fine):.2e}, relplot off {abs(peer_at - fine):.2e}"
                    )
                if np.any(conf == 1.0):
                    nudged = nudge_ones(probs)
                    c2, y2 = top_label(labels, nudged)
                    ours2 = smooth_calibration_error(labels, nudged)
                    peer2 = relplot.smECE(c2, y2)
                    table.add("a_jump_ours", name, abs(ours2 - ours))
                    table.add("a_jump_relplot", name, abs(peer2 - peer))
                    print(
                        f"    confidences 1.0 -> 0.998: ours {ours2:.6f} (moves {abs(ours2 - ours):.1e}), "
                        f"relplot {peer2:.6f} (moves {abs(peer2 - peer):.1e})"
                    )

                # (b) equal-mass ECE vs netcal ACE, our tie rule, Nixon's class-wise ACE
                ours_em = calibration_error(labels, probs, BINS, binning="equal_mass")
                split = equal_mass_top_label(conf, correct, ties="split")
                first = equal_mass_top_label(conf, correct, ties="first")
                arr = array_split_top_label(conf, correct)
                netcal_rule = netcal_rule_ace(conf, correct)
                try:
                    netcal_ace = ACE(bins=BINS, equal_intervals=False).measure(probs, labels)
                    text = f"netcal ACE {netcal_ace:.6f}: |diff| {abs(ours_em - netcal_ace):.2e}"
                    table.add("b_netcal", name, abs(ours_em - netcal_ace))
                    table.add("b_netcal_rule", name, abs(netcal_ace - netcal_rule))
                except ValueError as error:
                    netcal_errors.append(f"{name} N={n} seed={seed}")
                    text = f"netcal ACE raises ValueError ({error})"
                table.add("b_tie_rule", name, abs(ours_em - split))
                table.add("b_array_split", name, abs(split - arr))
                table.add("b_first_oracle", name, abs(ours_em - first))
                print(
                    f"(b) equal-mass ECE ours {ours_em:.6f} (oracle {first:.6f}); {text}; "
                    f"netcal-rule oracle {netcal_rule:.6f}; same bins, ties split by sort order "
                    f"{split:.6f}: |diff| {abs(ours_em - split):.2e}; np.array_split bins {arr:.6f}"
                )
                uc_top = calibration.lower_bound_scaling_ce(
                    probs,
                    labels,
                    p=1,
                    debias=False,
                    num_bins=BINS,
                    binning_scheme=calibration.get_equal_bins,
                    mode="top-label",
                )
                uc_marginal = calibration.lower_bound_scaling_ce(
                    probs,
                    labels,
                    p=1,
                    debias=False,
                    num_bins=BINS,
                    binning_scheme=calibration.get_equal_bins,
                    mode="marginal",
                )
                nixon = nixon_ace(labels, probs)
                ours_cw = calibration_error(
                    labels, probs, BINS, binning="equal_mass", mode="classwise"
                )
                table.add("b_uc_top", name, abs(ours_em - uc_top))
                table.add("b_uc_marginal", name, abs(ours_cw - uc_marginal))
                table.add("b_nixon", name, abs(ours_em - nixon))
                table.add("b_nixon_classwise", name, abs(ours_cw - nixon))
                print(
                    f"    uncertainty-calibration get_equal_bins top-label {uc_top:.6f} (|diff| "
                    f"{abs(ours_em - uc_top):.2e}), marginal {uc_marginal:.6f} (|diff to ours classwise| "
                    f"{abs(ours_cw - uc_marginal):.2e})"
                )
                print(
                    f"    Nixon class-wise ACE {nixon:.6f}: |top-label - Nixon| {abs(ours_em - nixon):.2e}; "
                    f"ours mode='classwise' {ours_cw:.6f}: |diff| {abs(ours_cw - nixon):.2e}"
                )

                # (c) 15-bin ECE vs torchmetrics
                ours_ece = calibration_error(labels, probs, BINS)
                tm = float(
                    multiclass_calibration_error(
                        torch.from_numpy(probs),
                        torch.from_numpy(labels),
                        num_classes=K,
                        n_bins=BINS,
                        norm="l1",
                    )
                )
                tm_rule, conf32, moved = torchmetrics_rule_ece(probs, correct)
                ours_top = ece_equal_width(conf, correct, top_edge_bin=True)
                table.add("c_tm", name, abs(ours_ece - tm))
                table.add("c_top", name, abs(ours_ece - ours_top))
                table.add("c_rule", name, abs(tm - tm_rule))
                print(
                    f"(c) 15-bin ECE ours {ours_ece:.6f}, torchmetrics {tm:.6f}: |diff| {abs(ours_ece - tm):.2e}; "
                    f"ours with c == 1.0 in a 16th bin {ours_top:.6f} (|ours - that| "
                    f"{abs(ours_ece - ours_top):.2e}); torchmetrics-rule oracle {tm_rule:.6f} (|tm - oracle| "
                    f"{abs(tm - tm_rule):.1e}); float32 conf == 1.0: {int(np.sum(conf32 == 1.0))} "
                    f"(float64: {int(np.sum(conf == 1.0))}), float32 conf < 1 binned off ours: {moved}"
                )
                for norm in ("l2", "max"):
                    ours_n = calibration_error(labels, probs, BINS, norm=norm)
                    tm_n = float(
                        multiclass_calibration_error(
                            torch.from_numpy(probs),
                            torch.from_numpy(labels),
                            num_classes=K,
                            n_bins=BINS,
                            norm=norm,
                        )
                    )
                    table.add(f"c_tm_{norm}", name, abs(ours_n - tm_n))
                    print(
                        f"    norm={norm}: ours {ours_n:.6f}, torchmetrics {tm_n:.6f}: |diff| {abs(ours_n - tm_n):.2e}"
                    )
                print(f"    [{time.time() - t0:.1f} s]")

    # (b) with N divisible by 15 and no ties: the only remaining difference to netcal is nothing
    table.n = 3000
    for name in ("calibrated", "overconfident"):
        for seed in seeds:
            labels, probs = make(name, 3000, seed)
            ours_em = calibration_error(labels, probs, BINS, binning="equal_mass")
            netcal_ace = ACE(bins=BINS, equal_intervals=False).measure(probs, labels)
            table.add("b_netcal_3000", name, abs(ours_em - netcal_ace))
            print(
                f"(b) N=3000 {name} seed={seed}: ours {ours_em:.6f}, netcal {netcal_ace:.6f}, "
                f"|diff| {abs(ours_em - netcal_ace):.1e}"
            )

    print(
        "\n== summary: absolute differences over data sets x N x seeds (max, median; max per data set)"
    )
    for key, text in (
        ("a_auto", "(a) smECE, automatic bandwidth: ours vs relplot.smECE"),
        ("a_sigma", "(a) |bandwidth ours - relplot|"),
        ("a_fixed", "(a) smECE_sigma at relplot's sigma: ours vs relplot.smECE_sigma"),
        (
            "a_rule",
            "(a) relplot vs its rule as an oracle (end node once, max(200, 10/sigma) points)",
        ),
        ("a_fine_ours", "(a) ours vs the near-continuous reference (N=2000)"),
        ("a_fine_relplot", "(a) relplot vs the near-continuous reference (N=2000)"),
        ("a_jump_ours", "(a) ours moves when confidences 1.0 become 0.998"),
        ("a_jump_relplot", "(a) relplot moves when confidences 1.0 become 0.998"),
        (
            "b_netcal",
            "(b) equal-mass ECE: ours vs netcal ACE(equal_intervals=False) (where it runs)",
        ),
        ("b_netcal_rule", "(b) netcal vs its rule as an oracle"),
        ("b_netcal_3000", "(b) ours vs netcal, N = 3000 = 15 x 200, no ties"),
        ("b_first_oracle", "(b) ours vs our rule as an oracle"),
        ("b_tie_rule", "(b) ours vs the same bins with ties split by sort order (tie rule alone)"),
        (
            "b_array_split",
            "(b) floor(15 C / N) bins vs np.array_split bins (boundary convention alone)",
        ),
        ("b_uc_top", "(b) ours vs uncertainty-calibration get_equal_bins, top-label, plugin l1"),
        ("b_uc_marginal", "(b) ours classwise vs uncertainty-calibration get_equal_bins, marginal"),
        ("b_nixon", "(b) our top-label equal-mass ECE vs Nixon's class-wise ACE"),
        ("b_nixon_classwise", "(b) ours mode='classwise', binning='equal_mass' vs Nixon's ACE"),
        ("c_tm", "(c) 15-bin ECE: ours vs torchmetrics multiclass_calibration_error"),
        ("c_tm_l2", "(c) norm='l2': ours vs torchmetrics"),
        ("c_tm_max", "(c) norm='max': ours vs torchmetrics"),
        ("c_top", "(c) ours vs ours with c == 1.0 in a 16th bin (top edge alone)"),
        ("c_rule", "(c) torchmetrics vs its rule as an oracle (float32 conf and edges)"),
    ):
        table.summary(key, text)
    print(
        f"(b) netcal ACE raised ValueError on {len(netcal_errors)} runs: {', '.join(netcal_errors)}"
    )


if __name__ == "__main__":
    main()
