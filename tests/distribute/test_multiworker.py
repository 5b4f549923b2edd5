"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train to the same weights.

``examples/multiworker.py`` (the README's multi-host recipe) runs in two processes with
``TF_CONFIG`` naming a two-worker cluster on free local ports. Checked: both finish in
bounded time, end with identical weights, the loss falls, and the ECE the workers
report (its bin sums aggregated over both workers) equals an explicit NumPy loop on the
evaluated test digits with the final weights. A third run of the script without
``TF_CONFIG`` (one worker, the same global batches) gives the same losses and weights.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr
from tests.conftest import free_ports
from tests.oracle import ece_loop, softmax

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute test"
)

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "multiworker.py"
TIMEOUT = 300
EPOCHS = 2
GLOBAL_BATCH = 64


def _run_workers(out, cluster):
    """Run one script process per worker of ``cluster`` (none: a single plain process)."""
    tasks = range(len(cluster["worker"])) if cluster else [None]
    procs = []
    try:
        for index in tasks:
            env = dict(os.environ, KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="")
            env.pop("TF_CONFIG", None)
            if cluster:
                task = {"type": "worker", "index": index}
                env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
            command = [sys.executable, str(SCRIPT), "--epochs", str(EPOCHS), "--out", str(out)]
            with open(out / f"log{index}.txt", "w") as log:
                procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = "\n".join((out / f"log{i}.txt").read_text()[-2000:] for i in tasks)
    assert [proc.returncode for proc in procs] == [0] * len(procs), logs
    results = [np.load(out / f"worker{i or 0}.npz") for i in tasks]
    return results, [[r[f"arr_{j}"] for j in range(6)] for r in results]


def test_two_workers_train_to_identical_weights(tmp_path):
    (tmp_path / "cluster").mkdir()
    (tmp_path / "single").mkdir()
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    results, weights = _run_workers(tmp_path / "cluster", cluster)
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    for r in results:
        assert r["loss"][-1] < r["loss"][0]
    np.testing.assert_array_equal(results[0]["test_ece"], results[1]["test_ece"])

    # The same split as the script; its evaluation drops the last partial global batch.
    x, y = klr.datasets.load_digits()
    x_test, y_test = x[1536:], y[1536:]
    evaluated = len(y_test) // GLOBAL_BATCH * GLOBAL_BATCH
    model = klr.models.simple_dense(x.shape[1:], 10)
    model.set_weights(weights[0])
    logits = np.asarray(model(x_test[:evaluated]), dtype=np.float64)
    expected = ece_loop(y_test[:evaluated], softmax(logits), 15)
    assert results[0]["test_ece"][-1] == pytest.approx(expected, abs=1e-5)

    # One worker on the same global batches: the same run up to summation order.
    single, single_weights = _run_workers(tmp_path / "single", None)
    np.testing.assert_allclose(single[0]["loss"], results[0]["loss"], rtol=1e-5)
    np.testing.assert_allclose(single[0]["test_ece"], results[0]["test_ece"], atol=1e-5)
    for a, b in zip(single_weights[0], weights[0]):
        np.testing.assert_allclose(a, b, atol=1e-5)
