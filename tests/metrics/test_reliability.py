import numpy as np
import pytest

import keras_label_relaxation as klr


@pytest.fixture
def data(rng):
    probs = rng.dirichlet(np.full(4, 0.4), size=400)
    labels = rng.integers(0, 4, 400)
    return labels, probs


def _bar_heights(ax, n):
    return np.array([patch.get_height() for patch in ax.patches[:n]])


def test_diagram_from_arrays_writes_png(tmp_path, data):
    labels, probs = data
    path = tmp_path / "diagram.png"
    fig = klr.reliability_diagram(labels, probs, num_bins=10, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    top, bottom = fig.axes
    ece = klr.expected_calibration_error(labels, probs, num_bins=10)
    assert f"ECE = {100 * ece:.2f}%" in top.get_title()
    # Accuracy bars: per-bin accuracy of an explicit computation.
    conf, pred = probs.max(-1), probs.argmax(-1)
    bins = np.minimum((conf * 10).astype(int), 9)
    expected = [
        np.mean(pred[bins == b] == labels[bins == b]) if (bins == b).any() else 0 for b in range(10)
    ]
    np.testing.assert_allclose(_bar_heights(top, 10), expected, atol=1e-9)
    np.testing.assert_allclose(_bar_heights(bottom, 10), np.bincount(bins, minlength=10) / 400)


def test_diagram_from_metric_state_equals_arrays(data):
    labels, probs = data
    metric = klr.ExpectedCalibrationError(num_bins=10)
    metric.update_state(labels[:100], probs[:100])
    metric.update_state(labels[100:], probs[100:])
    from_metric = klr.reliability_diagram(metric=metric, title="LR")
    from_arrays = klr.reliability_diagram(labels, probs, num_bins=10, title="LR")
    assert from_metric.axes[0].get_title() == from_arrays.axes[0].get_title()
    np.testing.assert_allclose(
        _bar_heights(from_metric.axes[0], 10), _bar_heights(from_arrays.axes[0], 10), atol=1e-6
    )


def test_diagram_bad_input(data):
    labels, probs = data
    with pytest.raises(ValueError, match="not both"):
        klr.reliability_diagram(labels, probs, metric=klr.ExpectedCalibrationError())
    with pytest.raises(ValueError, match="no samples"):
        klr.reliability_diagram(metric=klr.ExpectedCalibrationError())
    with pytest.raises(ValueError, match="`metric` must be"):
        klr.reliability_diagram(metric=klr.BrierScore())
    with pytest.raises(ValueError, match="Pass `y_true` and `probs`"):
        klr.reliability_diagram(labels)


def test_a_poisoned_metric_is_refused():
    metric = klr.ExpectedCalibrationError()
    metric.update_state([0, 1], np.array([[2.0, -1.0], [0.3, 0.7]], "float32"))  # row 0: logits
    with pytest.raises(ValueError, match="`metric`.*from_logits=True"):
        klr.reliability_diagram(metric=metric)
