import json
import subprocess
import sys

from keras_label_relaxation.cli import main


def test_klr_demo_is_compare_with_cross_entropy_and_one_alpha(capsys, tmp_path):
    assert main(["demo", "--epochs", "3", "--alpha", "0.2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| CE |" in out and "| LR (alpha = 0.2) |" in out and "CE+TS" not in out
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    for row in summary:
        assert row["accuracy"] > 0.8 and 0.0 <= row["ece"] <= 1.0 and row["nll"] > 0.0


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "keras_label_relaxation", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "demo" in result.stdout
