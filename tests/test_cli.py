import io
import json
import subprocess
import sys

import pytest

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


def test_klr_semi_supervised_writes_its_table_and_records(capsys, tmp_path):
    argv = ["semi-supervised", "--data", "digits", "--seeds", "2", "--steps", "3"]
    assert main(argv + ["--batch-size", "4", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| credal self-training (CSSL) |" in out and "| supervised only |" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["labelled"] == 100 and results["config"]["unlabelled"] == 799
    assert [(r["seed"], r["method"]) for r in results["records"]] == [
        (seed, method) for seed in (0, 1) for method in ("supervised", "hard", "credal")
    ]
    for record in results["records"]:
        assert 0.0 <= record["accuracy"] <= 1.0 and 0.0 <= record["ece"] <= 1.0
    assert (tmp_path / "table.md").read_text().startswith("100 labelled (10 per class)")
    assert main(["semi-supervised", "--data", "digits", "--methods", "credal,mixmatch"]) == 2
    assert "Unknown methods: ['mixmatch']" in capsys.readouterr().err


def test_only_strategies_that_fit_runs_under_are_offered(capsys):
    # MultiWorkerMirroredStrategy is not one: Keras' fit does not run under it.
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--strategy", "multiworker"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'multiworker'" in capsys.readouterr().err


def test_progress_lines_are_flushed_as_they_are_printed(tmp_path, monkeypatch):
    # Before: klr compare's progress went through print without flush, so behind a pipe or in
    # a file (the distributed chief's log) a line waited for the next flush of anything else.
    events = []

    class Recorder(io.StringIO):
        def write(self, text):
            events.append(("write", text))
            return len(text)

        def flush(self):
            events.append(("flush",))

    monkeypatch.setattr(sys, "stdout", Recorder())
    argv = ["compare", "--dataset", "digits", "--losses", "ce", "--seeds", "1", "--epochs", "1",
            "--limit", "300", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    progress = [i for i, e in enumerate(events) if e[0] == "write" and e[1].startswith("[")]
    assert len(progress) >= 4  # running and finished, for CE and CE+TS
    for index in progress:
        # print(line, flush=True): the line, its newline, then a flush.
        assert events[index + 1] == ("write", "\n") and events[index + 2] == ("flush",)
