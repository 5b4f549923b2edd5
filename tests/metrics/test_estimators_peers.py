"""The calibration estimators against the peer packages that define the same quantity.

relplot 1.0.3 (smooth ECE and its bandwidth), uncertainty-calibration 0.1.4
(plugin and debiased estimators of Kumar et al.), netcal 1.4.0 (ACE) and
torchmetrics (l2 and max calibration error). Each test skips where its peer is
not installed (the ``peers`` extra installs them).
"""

import numpy as np
import pytest

from keras_label_relaxation import metrics


def _data(seed, n=3000, k=5):
    rng = np.random.default_rng(seed)
    logits = 2.0 * rng.standard_normal((n, k))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    sharp = probs**0.7 / np.sum(probs**0.7, -1, keepdims=True)
    labels = np.array([rng.choice(k, p=p) for p in sharp])
    return labels, probs


@pytest.mark.parametrize("seed", [0, 1])
def test_smooth_ece_matches_relplot(seed):
    relplot = pytest.importorskip("relplot")
    labels, probs = _data(seed)
    confidence, correct = relplot.multiclass_logits_to_confidences(probs, labels, probs=True)
    expected, sigma = relplot.metrics.smECE(confidence, correct, return_width=True)
    # relplot discretises onto a 1001-point grid and truncates the kernel; we do neither.
    assert metrics.smooth_calibration_error(labels, probs) == pytest.approx(expected, abs=5e-4)
    assert metrics.smooth_calibration_error(labels, probs, bandwidth=sigma) == pytest.approx(
        relplot.smECE_sigma(confidence, correct, sigma), abs=5e-4
    )


@pytest.mark.parametrize("mode", ["top_label", "classwise"])
@pytest.mark.parametrize("binning", ["equal_width", "equal_mass"])
@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_plugin_and_debiased_l2_match_uncertainty_calibration(mode, binning, norm):
    calibration = pytest.importorskip("calibration")
    labels, probs = _data(2)  # 3000 = 15 x 200: the peer's np.array_split bins are ours
    scheme = (
        calibration.get_equal_bins if binning == "equal_mass" else calibration.get_equal_prob_bins
    )
    peer_mode = "top-label" if mode == "top_label" else "marginal"
    p = 1 if norm == "l1" else 2
    for debiased in (False, True) if norm == "l2" else (False,):
        expected = calibration.lower_bound_scaling_ce(
            probs, labels, p=p, debias=debiased, num_bins=15, binning_scheme=scheme, mode=peer_mode
        )
        got = metrics.calibration_error(
            labels, probs, 15, norm=norm, binning=binning, debiased=debiased, mode=mode
        )
        assert got == pytest.approx(expected, abs=1e-9)


def test_debiased_l1_matches_uncertainty_calibration_resampling():
    calibration = pytest.importorskip("calibration")
    labels, probs = _data(3)
    np.random.seed(0)  # noqa: NPY002 (the peer resamples with the global NumPy generator)
    peer = [
        calibration.lower_bound_scaling_ce(
            probs,
            labels,
            p=1,
            debias=True,
            num_bins=15,
            mode="top-label",
            binning_scheme=calibration.get_equal_bins,
        )
        for _ in range(20)
    ]
    got = metrics.calibration_error(labels, probs, 15, binning="equal_mass", debiased=True)
    # Ours is the limit of their Gaussian resampling (1000 draws per call, 20 calls).
    assert got == pytest.approx(np.mean(peer), abs=4 * np.std(peer) / np.sqrt(20) + 1e-6)
    assert got < metrics.calibration_error(labels, probs, 15, binning="equal_mass")


def test_equal_mass_ece_matches_netcal_ace():
    netcal = pytest.importorskip("netcal.metrics")
    labels, probs = _data(4, k=5)  # five columns: netcal's multi-class path (two are binary)
    expected = netcal.ACE(bins=15, equal_intervals=False).measure(probs, labels)
    got = metrics.calibration_error(labels, probs, 15, binning="equal_mass")
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("norm,peer_norm", [("l1", "l1"), ("l2", "l2"), ("max", "max")])
def test_equal_width_norms_match_torchmetrics(norm, peer_norm):
    torch = pytest.importorskip("torch")
    classification = pytest.importorskip("torchmetrics.classification")
    labels, probs = _data(5)
    peer = classification.MulticlassCalibrationError(num_classes=5, n_bins=15, norm=peer_norm)
    expected = float(peer(torch.from_numpy(probs), torch.from_numpy(labels)))
    got = metrics.calibration_error(labels, probs, 15, norm=norm)
    assert got == pytest.approx(expected, abs=1e-6)
    metric = metrics.CalibrationError(15, norm=norm)
    metric.update_state(labels, probs.astype("float32"))
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)


def test_debiased_l2_singleton_bin_matches_uncertainty_calibration():
    # Before: a bin of one sample added (acc - conf)^2 / W (0.1257983 vs the peer's 0.1257685).
    calibration = pytest.importorskip("calibration")
    labels, probs = _data(6, n=400)
    bins = np.minimum((probs.max(-1) * 15).astype(int), 14)
    assert 1 in np.bincount(bins)  # one sample alone in its bin
    expected = calibration.lower_bound_scaling_ce(
        probs, labels, p=2, debias=True, num_bins=15,
        binning_scheme=calibration.get_equal_prob_bins, mode="top-label",
    )  # fmt: skip
    got = metrics.calibration_error(labels, probs, 15, norm="l2", debiased=True)
    assert got == pytest.approx(expected, abs=1e-9)
