"""``klr --strategy data-parallel``: keras.distribution.DataParallel on JAX, one or two processes.

Every JAX run is a subprocess (``KERAS_BACKEND=jax``, 2 host devices per process through
``XLA_FLAGS=--xla_force_host_platform_device_count=2``, or 1), so these tests run under any
backend. Two processes join on 127.0.0.1 through ``keras.distribution.initialize`` (a free
port). All runs of a test start together and share a deadline; whatever still runs at the end
is killed with SIGKILL (processes of a JAX cluster waiting on a collective ignore SIGTERM).

Checked: ``_data_parallel_worker.py`` (cross-entropy and label relaxation trained through
``LossHyperModel`` and ``distribute.fit`` as the runner does, with BatchNorm, dropout and an L2
penalty, a validation set and a ragged rest) reaches the same weights, History and test logits
(1e-5) on one device, on two devices of one process and on two processes with two devices each;
the validation scores equal Keras' ``evaluate`` on every example (also, in one process on two
devices, for a loss compiled by name and a scheduled loss with validation sample weights, and
the float64 NumPy loss); odd and oversized global batches are refused by name; the runner's
``search`` scores the same. ``klr compare --strategy data-parallel`` (CE and CE+TS) in two
processes writes the same table as in one process on one device, process 1 into
``--out/process-1``. Without JAX (``--strategy data-parallel`` under
TensorFlow) and with cluster options on another strategy, ``klr`` refuses, naming option and value.
"""

import importlib.util
import json
import os
import sys

import keras
import numpy as np
import pytest

from keras_label_relaxation.cli import main
from tests import oracle
from tests.conftest import free_ports, run_processes

WORKER = os.path.join(os.path.dirname(__file__), "_data_parallel_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE = 240  # seconds for all runs of a test together; about 40 to 90 on two shared cores
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")


def _env(devices):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    for name in [k for k in env if k.startswith("KERAS_DISTRIBUTION_")]:
        del env[name]
    return env


def _run_together(runs, logs):
    """Start ``{name: (argv, devices)}`` at once; wait for all under the deadline, kill the rest."""
    commands = {n: ([sys.executable, *argv], _env(d)) for n, (argv, d) in runs.items()}
    run_processes(commands, logs, DEADLINE, cwd=ROOT)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data_parallel")
    (port,) = free_ports()
    runs = {
        "one": ([WORKER, str(tmp / "one.npz")], 1),
        "two": ([WORKER, str(tmp / "two.npz")], 2),
        **{
            f"process{i}": ([WORKER, str(tmp / f"process{i}.npz"), "2", str(i), str(port)], 2)
            for i in (0, 1)
        },
    }
    _run_together(runs, tmp)
    return {name: dict(np.load(tmp / f"{name}.npz")) for name in runs}


@needs_jax
def test_runs_use_the_devices_and_processes_asked_for(trained):
    counts = {name: (int(r["devices"]), int(r["processes"])) for name, r in trained.items()}
    assert counts == {"one": (1, 1), "two": (2, 1), "process0": (4, 2), "process1": (4, 2)}


@needs_jax
@pytest.mark.parametrize("loss", ["cross_entropy", "label_relaxation"])
@pytest.mark.parametrize("run", ["two", "process0", "process1"])
def test_weights_history_and_logits_equal_one_device(trained, run, loss):
    one, other = trained["one"], trained[run]
    keys = [k for k in one if k.startswith(f"{loss}/") and "/evaluate/" not in k]
    assert any("/weight" in k for k in keys) and f"{loss}/history/val_ece" in keys
    for key in keys:
        np.testing.assert_allclose(other[key], one[key], atol=1e-5, rtol=0, err_msg=key)
    assert one[f"{loss}/history/loss"][-1] < one[f"{loss}/history/loss"][0]  # training moved


@needs_jax
@pytest.mark.parametrize("run", ["two", "process0", "process1"])
def test_search_scores_equal_one_device(trained, run):
    one, other = trained["one"], trained[run]
    np.testing.assert_allclose(other["search/scores"], one["search/scores"], atol=1e-5, rtol=0)
    assert float(other["search/best"]) == float(one["search/best"])


@needs_jax
@pytest.mark.parametrize("loss", ["cross_entropy", "label_relaxation"])
def test_validation_scores_every_example_as_keras_evaluate(trained, loss):
    one = trained["one"]
    for metric in ("loss", "accuracy", "ece"):
        final = one[f"{loss}/history/val_{metric}"][-1]
        assert final == pytest.approx(float(one[f"{loss}/evaluate/{metric}"]), abs=1e-6)


@needs_jax
def test_batches_that_do_not_split_or_exceed_the_data_are_refused(trained):
    odd, large = (str(trained["two"][f"error/{n}"]) for n in (15, 102))
    assert "batch_size=15" in odd and "2 devices" in odd
    assert "batch_size=102" in large and "100 examples" in large


@needs_jax
def test_klr_compare_in_two_processes_equals_one_device(tmp_path):
    (port,) = free_ports()
    argv = ["-m", "keras_label_relaxation", "compare", "--strategy", "data-parallel"]
    argv += ["--dataset", "digits", "--limit", "200", "--losses", "ce", "--epochs", "2"]
    argv += ["--batch-size", "32"]
    cluster = ["--job-addresses", f"127.0.0.1:{port}", "--num-processes", "2"]
    runs = {
        "one": ([*argv, "--out", str(tmp_path / "one")], 1),
        **{
            f"process{i}": (
                [*argv, "--out", str(tmp_path / "two"), *cluster, "--process-id", str(i)],
                2,
            )
            for i in (0, 1)
        },
    }
    _run_together(runs, tmp_path)
    tables = {
        name: json.loads((tmp_path / path / "results.json").read_text())["summary"]
        for name, path in (("one", "one"), ("process0", "two"), ("process1", "two/process-1"))
    }
    assert [row["loss"] for row in tables["one"]] == ["CE", "CE+TS"]
    for name in ("process0", "process1"):
        for row, expected in zip(tables[name], tables["one"], strict=True):
            for key in ("accuracy", "ece", "nll", "brier"):
                assert row[key] == pytest.approx(expected[key], abs=1e-5), (name, row["loss"], key)
            assert row["params"] == expected["params"]


# One process on two devices: a loss compiled by name (and a scheduled one) validated on
# (x, y, sample_weight) through distribute.fit; the references on one device outside the
# distribution: Keras' evaluate of the same weights and the float64 NumPy loss.
WEIGHTED_VALIDATION = """
import json, sys
import keras, numpy as np
import keras_label_relaxation as klr
from keras_label_relaxation import distribute

rng = np.random.default_rng(0)
x, y = rng.standard_normal((64, 6)).astype("float32"), rng.integers(0, 3, 64)
x_val, y_val = rng.standard_normal((37, 6)), rng.integers(0, 3, 37)  # float64 x: cast as Keras
w_val = rng.uniform(0.0, 3.0, 37)

def build(scheduled):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(
        3, activation=None if scheduled else "softmax",
        kernel_regularizer=keras.regularizers.L2(0.01))])
    if scheduled:
        loss = klr.SparseLabelRelaxation(alpha=klr.LinearAlpha(0.3, 0.1, epochs=1),
                                         from_logits=True)
        metrics, weighted = ["accuracy", loss.alpha_state], []
    else:
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
        weighted = [keras.metrics.SparseCategoricalAccuracy(name="weighted_accuracy")]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, metrics=metrics,
                  weighted_metrics=weighted)
    return model

out = {}
for scheduled in (False, True):
    callbacks = [klr.AlphaScheduler()] if scheduled else []
    with distribute.data_parallel():
        import jax
        model = build(scheduled)
        history = distribute.fit(model, x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
                                 validation_data=(x_val, y_val, w_val), validation_batch_size=10,
                                 callbacks=callbacks)
        weights = model.get_weights()
    reference = build(scheduled)  # one device, outside the distribution
    reference.set_weights(weights)
    if scheduled:
        reference.loss.alpha_state.set_epoch(1)
    evaluated = reference.evaluate(x_val, y_val, sample_weight=w_val, batch_size=10,
                                   verbose=0, return_dict=True)
    logits = np.asarray(reference.predict(x_val, verbose=0), np.float64)
    out["scheduled" if scheduled else "by_name"] = {
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "evaluate": evaluated, "outputs": logits.tolist(),
        "kernel": np.asarray(weights[0], np.float64).tolist(),
    }
out["devices"], out["y_val"], out["w_val"] = jax.device_count(), y_val.tolist(), w_val.tolist()
print(json.dumps(out))
"""


@needs_jax
def test_validation_of_a_loss_by_name_with_sample_weights_equals_keras_evaluate(tmp_path):
    _run_together({"weighted": (["-c", WEIGHTED_VALIDATION], 2)}, tmp_path)
    values = json.loads((tmp_path / "weighted.log").read_text().strip().splitlines()[-1])
    assert values["devices"] == 2
    y_val, w_val = np.array(values["y_val"]), np.array(values["w_val"])
    for name in ("by_name", "scheduled"):
        run = values[name]
        history, evaluated = run["history"], run["evaluate"]
        assert {f"val_{key}" for key in evaluated} <= set(history), name
        for key, value in evaluated.items():
            assert history[f"val_{key}"][-1] == pytest.approx(value, abs=1e-6), (name, key)
        # Independent: sum_i w_i loss_i / N + 0.01 |kernel|^2 (Keras' default reduction).
        outputs, kernel = np.array(run["outputs"]), np.array(run["kernel"])
        if name == "by_name":
            probs = np.clip(outputs, 1e-7, 1 - 1e-7)
            per_example = -np.log(probs[np.arange(37), y_val] / probs.sum(-1))
            correct = outputs.argmax(-1) == y_val
            assert history["val_weighted_accuracy"][-1] == pytest.approx(
                np.sum(w_val * correct) / np.sum(w_val), abs=1e-6
            )
        else:
            assert history["val_alpha"] == pytest.approx([0.3, 0.1], abs=1e-7)
            per_example = oracle.label_relaxation(y_val, oracle.softmax(outputs), 0.1)
        expected = np.sum(w_val * per_example) / 37 + 0.01 * np.sum(kernel**2)
        assert history["val_loss"][-1] == pytest.approx(expected, rel=1e-5), name


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the refusal on other backends")
def test_data_parallel_needs_the_jax_backend(capsys):
    argv = ["compare", "--strategy", "data-parallel", "--limit", "100", "--losses", "ce"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "strategy='data-parallel'" in error and f"backend={keras.backend.backend()!r}" in error


def test_cluster_options_need_data_parallel(capsys):
    assert main(["compare", "--num-processes", "2", "--limit", "100"]) == 2
    assert "--num-processes=2 with --strategy=default" in capsys.readouterr().err
