import subprocess
import sys

from keras_label_relaxation.cli import main
from keras_label_relaxation.experiments import run_demo


def test_demo_trains_both_losses_and_reports_metrics():
    results = run_demo(epochs=3)
    assert set(results) == {"cross_entropy", "label_relaxation"}
    for metrics in results.values():
        assert metrics["accuracy"] > 0.8
        assert 0.0 <= metrics["ece"] <= 1.0 and metrics["nll"] > 0.0


def test_klr_demo_prints_a_table(capsys):
    assert main(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "| cross_entropy |" in out and "| label_relaxation |" in out


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "keras_label_relaxation", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "demo" in result.stdout
