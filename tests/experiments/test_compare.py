"""The comparison runner: end to end, resume, outputs, bad input."""

import csv
import functools
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_label_relaxation import datasets, models
from keras_label_relaxation.calibration import TemperatureScaling
from keras_label_relaxation.cli import main
from keras_label_relaxation.datasets import tfds_source
from keras_label_relaxation.experiments import compare, paper
from keras_label_relaxation.experiments.store import RunStore, check_config
from tests.conftest import write_idx

SMALL = {"losses": ["ce", "lr"], "grids": {"lr": [0.05, 0.2]}, "seeds": 1, "epochs": 2}


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


def test_klr_compare_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["compare", "--dataset", "digits", "--losses", "ce,lr", "--seeds", "1",
                 "--epochs", "2", "--out", str(out), "--optimize-for", "ece"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert (
        "| CE |" in printed and "| LR (alpha = " in printed and "| CE+TS (temperature = " in printed
    )
    results = json.loads((out / "results.json").read_text())
    assert {row["loss"] for row in results["summary"]} == {"CE", "LR", "CE+TS"}
    for row in results["summary"]:
        assert 0.8 < row["accuracy"] <= 1.0 and 0.0 <= row["ece"] < 0.2
        assert row["nll"] > 0 and 0 <= row["brier"] <= 2
    lr = next(r for r in results["records"] if r["loss"] == "LR")
    assert lr["param"] in (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4)  # the paper's grid
    assert len(lr["search_scores"]) == 7
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["loss"] for r in rows] == ["CE", "LR", "CE+TS"]
    assert (out / "table.md").read_text().startswith("| Loss (digits, optimised for ece)")
    # One seed has no spread: no "± 0.000" in the table, no standard deviation in the summary.
    assert "±" not in printed and "±" not in (out / "table.md").read_text()
    assert all(row["accuracy_std"] is None and row["ece_std"] is None for row in results["summary"])
    assert json.loads((out / "config.json").read_text())["augment"] is False  # not CIFAR
    for name in ("CE", "LR", "CE_TS"):
        assert (out / f"reliability_{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_reuses_finished_units_and_gives_the_same_table(digits, tmp_path):
    lines = []

    def stop_after_first_unit(line):
        lines.append(line)
        if "accuracy" in line:
            raise KeyboardInterrupt

    out = str(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        compare(models.simple_dense, digits, out_dir=out, progress=stop_after_first_unit, **SMALL)
    assert sum(1 for _ in open(f"{out}/trials.jsonl")) == 1
    second = []
    resumed = compare(models.simple_dense, digits, out_dir=out, progress=second.append, **SMALL)
    assert any("CE: done before, reused" in line for line in second)
    assert sum("running" in line for line in second) == 2
    fresh = compare(models.simple_dense, digits, out_dir=str(tmp_path / "fresh"), progress=None,
                    **SMALL)  # fmt: skip
    assert resumed.to_markdown() == fresh.to_markdown()
    again = []
    compare(models.simple_dense, digits, out_dir=out, progress=again.append, **SMALL)
    assert all("reused" in line for line in again)


def test_other_configuration_in_the_same_directory_is_refused(digits, tmp_path):
    out = str(tmp_path / "run")
    compare(models.simple_dense, digits, out_dir=out, progress=None, **SMALL)
    with pytest.raises(
        ValueError,
        match=r"holds results of a different configuration "
        r"\(differing: epochs\): 3 finished \(seed, loss\) "
        r"unit\(s\) in trials.jsonl, 1 search\(es\) in tuner/",
    ):
        compare(models.simple_dense, digits, out_dir=out, progress=None, **{**SMALL, "epochs": 3})


def test_user_data_and_model_through_the_python_api(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 5)) * 3
    y = rng.integers(0, 3, 400)
    x = (centers[y] + rng.normal(size=(400, 5))).astype("float32")
    import keras

    def build():
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])

    results = compare(build, (x[:300], y[:300], x[300:], y[300:]), losses=["lr"], seeds=2,
                      epochs=2, grids={"lr": [0.1]}, temperature_scaling=False, progress=None,
                      out_dir=str(tmp_path))  # fmt: skip
    assert [row["loss"] for row in results.summary] == ["LR"]
    assert results.summary[0]["seeds"] == 2 and results.summary[0]["accuracy"] > 0.7
    accuracies = [r["accuracy"] for r in results.records]
    assert results.summary[0]["accuracy_std"] == pytest.approx(np.std(accuracies))
    assert f"{np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}" in results.to_markdown()


def test_npz_dataset_through_the_cli(tmp_path, capsys):
    x, y = datasets.load_digits()
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x[:1000], y_train=y[:1000], x_test=x[1000:1200], y_test=y[1000:1200])
    code = main(["compare", "--dataset", str(path), "--losses", "ce", "--epochs", "1",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    assert "on mine (1000 train, 200 test)" in capsys.readouterr().out


def test_data_without_a_test_split_needs_a_test_fraction(tmp_path, capsys):
    # An IDX directory holding only t10k files (like ../shared/data/mnist-test).
    x, y = datasets.load_digits()
    data = datasets.from_arrays("t10k", x[:600], y[:600], x[:0], y[:0])
    with pytest.raises(ValueError, match="no test split: pass `test_fraction`"):
        compare(models.simple_dense, data, losses=["ce"], progress=None, out_dir=str(tmp_path))
    images = np.round(x[:600, ..., 0] * 255).astype(np.uint8)
    idx = tmp_path / "idx"
    idx.mkdir()
    write_idx(idx / "t10k-images-idx3-ubyte", images)
    write_idx(idx / "t10k-labels-idx1-ubyte", y[:600].astype(np.uint8))
    code = main(["compare", "--dataset", str(idx), "--losses", "ce", "--epochs", "1",
                 "--test-fraction", "0.25", "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert "| CE |" in table
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["test_fraction"] == 0.25
    with pytest.raises(SystemExit):
        main(["compare", "--test-fraction", "1.5"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--losses", "ce,hinge"], "Unknown loss name: 'hinge'"),
        (["compare", "--model", "resnet50"], "Unknown model name: 'resnet50'"),
        (["compare", "--dataset", "svhn"], "Unknown data set: 'svhn'"),
    ],
)
def test_bad_names_are_reported(tmp_path, capsys, argv, message):
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_bad_arguments(digits, tmp_path):
    with pytest.raises(SystemExit):
        main(["compare", "--seeds", "0"])
    with pytest.raises(ValueError, match="`seeds`"):
        compare(models.simple_dense, digits, seeds=0)
    with pytest.raises(ValueError, match="empty grid"):
        compare(models.simple_dense, digits, losses=["lr"], grids={"lr": []}, progress=None,
                out_dir=str(tmp_path))  # fmt: skip


def test_reproduce_without_data_says_how_to_supply_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tfds_source, "_network_available", lambda host="": False)
    code = main(["reproduce", "table1", "--quick", "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert "data_dir" in capsys.readouterr().err


def test_paper_presets_and_learning_rate_rule():
    assert paper.schedule("resnet56_v2", "cifar10") == (200, 0.1, 0.3162, (50, 100, 150))
    assert paper.schedule("simple_dense", "mnist")[:2] == (25, 0.05)
    callback = paper.PaperLearningRate(0.1, 0.1, (50, 100, 150), decay=1e-5)
    assert callback.rate(50, 0) == 0.1 and callback.rate(51, 0) == pytest.approx(0.01)
    assert callback.rate(0, 100_000) == pytest.approx(0.1 / 2)
    rows = paper.paper_rows("table1", "mnist", "simple_dense", "ece")
    assert rows["LR"]["ece"] == 0.003 and "CE+TS" in rows


def test_reproduce_runs_both_schemes_next_to_the_papers_numbers(tmp_path, capsys, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_label_relaxation.tuning import hypermodel

    # The table1 preset shrunk to one data set, one seed, one epoch and one-value grids.
    monkeypatch.setitem(paper.PRESETS["table1"], "runs", [("mnist", "simple_dense")])
    monkeypatch.setitem(paper.PRESETS["table1"], "seeds", 1)
    monkeypatch.setattr(paper, "schedule", lambda model, dataset: (1, 0.05, 0.3162, (25, 40)))
    for name in list(hypermodel.PAPER_GRIDS):
        monkeypatch.setitem(hypermodel.PAPER_GRIDS, name, hypermodel.PAPER_GRIDS[name][:1])
    with tfds.testing.mock_data(num_examples=40):
        code = main(["reproduce", "table1", "--data-dir", str(tmp_path), "--out",
                     str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "simple_dense on mnist, optimised for acc (1 seed(s), 1 epochs)" in printed
    assert "simple_dense on mnist, optimised for ece" in printed
    # The paper's values stand next to ours: LR optimised for ECE on MNIST is 0.985 / 0.003.
    assert "| 0.985 ± 0.002 |" in printed and "| 0.003 ± 0.001 |" in printed
    lr_row = next(line for line in printed.splitlines() if line.startswith("| LR |"))
    assert lr_row.count("±") == 2  # the paper's spreads; ours has one seed, so none
    assert "| — |" in printed  # CE has no row in the paper's ECE-optimised block
    for scheme in ("acc", "ece"):
        assert (tmp_path / "out" / f"mnist_simple_dense_{scheme}" / "results.json").exists()


class _FitSpy:
    """Records the model and the per-pixel mean of the inputs of every ``Model.fit``."""

    def __init__(self, monkeypatch):
        import keras

        self.models, self.means = [], []
        original = keras.Model.fit

        def fit(model, x=None, *args, **kwargs):
            self.models.append(model)
            self.means.append(np.asarray(x).mean(axis=0))
            return original(model, x, *args, **kwargs)

        monkeypatch.setattr(keras.Model, "fit", fit)


def test_every_model_is_centred_on_the_mean_of_its_own_fit_data(digits, tmp_path, monkeypatch):
    spy = _FitSpy(monkeypatch)
    compare(models.simple_dense, digits, losses=["lr"], grids={"lr": [0.05, 0.2]}, epochs=1,
            out_dir=str(tmp_path), progress=None)  # fmt: skip
    # Two search trials (on 5/6), the retrained LR model (all) and CE for CE+TS (85%).
    assert len(spy.means) == 4
    for mean in spy.means:  # a mean taken on other data leaves an offset of ~1e-2 here
        assert np.abs(mean).max() < 1e-5


def _mock_cifar(tmp_path, num_examples=30):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=num_examples):
        return datasets.load("cifar10", data_dir=str(tmp_path))


def _tiny(shape, classes):
    import keras

    return keras.Sequential(
        [keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(classes)]
    )


def test_cifar_trains_with_the_papers_augmentation_by_default(tmp_path, monkeypatch):
    import keras

    data = _mock_cifar(tmp_path)
    spy = _FitSpy(monkeypatch)
    results = compare(_tiny, data, losses=["lr"], grids={"lr": [0.1]}, epochs=1,
                      out_dir=str(tmp_path / "run"), progress=None)  # fmt: skip
    assert len(spy.models) == 3  # the search trial, the retrained LR model, CE for CE+TS
    x = keras.ops.convert_to_tensor(data.x_train[:8] - data.x_train.mean(0))
    for model in spy.models:
        augmentation = model.get_layer("augmentation")
        assert [type(layer).__name__ for layer in augmentation.layers] == [
            "RandomFlip", "RandomTranslation"
        ]  # fmt: skip
        # In the training path the images change; at inference (predict, evaluate) they do not.
        trained = keras.ops.convert_to_numpy(model(x, training=True))
        inferred = keras.ops.convert_to_numpy(model(x, training=False))
        assert not np.allclose(trained, inferred)
        np.testing.assert_allclose(model.predict(x, verbose=0), inferred, rtol=1e-5, atol=1e-5)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["augment"] is True and results.augment
    assert results.to_markdown().startswith("| Loss (cifar10, optimised for acc, augmented)")


def test_no_augment_turns_the_augmentation_off(tmp_path, monkeypatch, capsys):
    data = _mock_cifar(tmp_path)
    spy = _FitSpy(monkeypatch)
    results = compare(_tiny, data, losses=["ce"], temperature_scaling=False, epochs=1,
                      augment=False, out_dir=str(tmp_path / "off"), progress=None)  # fmt: skip
    assert not results.augment and "augmented" not in results.to_markdown()
    assert all("augmentation" not in [layer.name for layer in m.layers] for m in spy.models)
    with pytest.raises(ValueError, match="`augment`.*augment='yes'"):
        compare(_tiny, data, augment="yes", out_dir=str(tmp_path / "bad"), progress=None)
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=30):
        code = main(["compare", "--dataset", "cifar10", "--data-dir", str(tmp_path),
                     "--losses", "ce", "--epochs", "1", "--no-augment",
                     "--out", str(tmp_path / "cli")])  # fmt: skip
    assert code == 0
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["augment"] is False
    assert "augmented" not in capsys.readouterr().out


def test_a_directory_holding_only_another_runs_configuration_says_so(tmp_path):
    out = str(tmp_path / "run")
    RunStore(out, {"epochs": 1})  # claimed by a run that has not finished a unit yet
    with pytest.raises(
        ValueError,
        match=r"holds only the configuration of a different run "
        r"\(config.json, differing: epochs; no results yet\)",
    ):
        RunStore(out, {"epochs": 2})
    assert check_config(out, {"epochs": 1}) and not check_config(str(tmp_path / "new"), {})


def test_a_temperature_on_the_grid_edge_is_recorded_and_reported(digits, tmp_path, monkeypatch):
    # A grid of two values: the fitted temperature is always one of its edges, and the fit
    # warns (GridEdgeWarning, from the package: an error under this project's pytest filters
    # unless the runner catches it).
    fit = functools.partialmethod(TemperatureScaling.fit, grid=(0.5, 2.0))
    monkeypatch.setattr(TemperatureScaling, "fit", fit)
    lines = []
    results = compare(models.simple_dense, digits, losses=["ce"], epochs=1,
                      out_dir=str(tmp_path), progress=lines.append)  # fmt: skip
    ce, ts = results.records
    assert "warnings" not in ce
    (message,) = ts["warnings"]
    assert f"chose T={ts['param']:g}" in message and "which spans [0.5, 2]" in message
    assert f"[2/2] seed 0, CE+TS: warning: {message}" in lines
    stored = json.loads((tmp_path / "results.json").read_text())["records"]
    assert stored[1]["warnings"] == [message]


class _TrialError(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise ValueError("deliberate error of a search trial")


def test_a_failed_search_trial_raises_its_own_error(digits, tmp_path):
    # keras-tuner ends the search with "Number of consecutive failures exceeded the limit of 1"
    # and the trial's traceback as text at its end; the search raises the trial's error itself.
    with pytest.raises(ValueError, match="^deliberate error of a search trial$"):
        compare(models.simple_dense, digits, losses=["lr"], grids={"lr": [0.1]}, epochs=1,
                temperature_scaling=False, callbacks=lambda: [_TrialError()],
                out_dir=str(tmp_path), progress=None)  # fmt: skip


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
def test_data_parallel_refuses_a_batch_size_by_name_before_training(tmp_path):
    # JAX with 2 host devices, in a subprocess (devices are set before JAX starts).
    script = textwrap.dedent("""
        import sys
        from keras_label_relaxation.cli import main
        for batch, out in zip(("15", "400"), sys.argv[1:]):
            main(["compare", "--strategy", "data-parallel", "--dataset", "digits", "--limit",
                  "200", "--losses", "ce,lr", "--epochs", "1", "--batch-size", batch,
                  "--out", out])
    """)
    outs = [tmp_path / "odd", tmp_path / "large"]
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")  # fmt: skip
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-c", script, *map(str, outs)], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("klr compare:")]
    assert errors == [
        "klr compare: error: Invalid value for argument `batch_size` (--batch-size): under "
        "DataParallel the global batch must split evenly over the 2 devices (1 process(es)). "
        "Received: batch_size=15",
        "klr compare: error: Invalid value for argument `batch_size` (--batch-size): "
        "data-parallel training keeps full batches only, and a search trial's fit part (5/6 of "
        "the training split) has 167 examples. Received: batch_size=400",
    ], result.stderr[-3000:]
    assert "consecutive failures" not in result.stderr + result.stdout
    assert not any(out.exists() for out in outs)  # refused before the run claimed --out
