"""The alpha search under keras-tuner's distributed mode: a chief and two workers on 127.0.0.1.

Three subprocesses run the same ``search`` call (``_distributed_worker.py``: label relaxation
over the paper's 7 alphas, 1 epoch of a linear model on 600 digits, ``optimize_for="ece"``),
configured the keras-tuner way by environment variables: ``KERASTUNER_TUNER_ID`` (``chief``,
``tuner0``, ``tuner1``), ``KERASTUNER_ORACLE_IP=127.0.0.1`` and ``KERASTUNER_ORACLE_PORT`` (a
free port). The chief serves the grid oracle over gRPC, the workers run the trials; all share
one keras-tuner directory. A worker's first trial waits until the other worker has started one,
so both take part. The search has a deadline; processes still running at the end are killed.

Checked: the two workers trained every alpha of the grid exactly once between them; the chief's
trial files hold the 7 alphas once each, with the scores the workers measured; the chief returns
the alpha of the lowest validation ECE.
"""

import glob
import json
import os
import sys

import pytest

from keras_label_relaxation.tuning import PAPER_GRIDS
from tests.conftest import free_ports, run_processes

WORKER_SCRIPT = os.path.join(os.path.dirname(__file__), "_distributed_worker.py")
WORKERS = ("tuner0", "tuner1")
DEADLINE = 240  # seconds for the whole search; it takes 15 to 40 on two shared cores


def _run_distributed_search(tmp_path):
    """Start the chief and the workers, wait for all; their outputs and the project directory."""
    directory = tmp_path / "search"
    directory.mkdir()
    (port,) = free_ports()
    commands = {}
    for tuner_id in ("chief", *WORKERS):
        env = dict(
            os.environ,
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(port),
            no_grpc_proxy="127.0.0.1",
            TF_CPP_MIN_LOG_LEVEL="3",
        )
        output = tmp_path / f"{tuner_id}.json"
        args = [str(directory), str(output), str(len(WORKERS))]
        commands[tuner_id] = ([sys.executable, WORKER_SCRIPT, *args], env)
    run_processes(commands, tmp_path, DEADLINE)
    outputs = {}
    for tuner_id in commands:
        with open(tmp_path / f"{tuner_id}.json") as f:
            outputs[tuner_id] = json.load(f)
    return outputs, directory / "grid"


@pytest.fixture(scope="module")
def distributed_search(tmp_path_factory):
    return _run_distributed_search(tmp_path_factory.mktemp("distributed"))


def test_workers_cover_the_grid_exactly_once(distributed_search):
    outputs, _ = distributed_search
    trained = [alpha for tuner_id in WORKERS for alpha in outputs[tuner_id]["trained"]]
    assert sorted(trained) == sorted(PAPER_GRIDS["label_relaxation"])
    assert all(outputs[tuner_id]["trained"] for tuner_id in WORKERS)
    assert outputs["chief"]["trained"] == []
    # Each worker's search() returns the scores of its own trials.
    assert sorted(a for t in WORKERS for a, _ in outputs[t]["scores"]) == sorted(trained)
    assert all(outputs[t]["best"] is None for t in WORKERS)


def test_chief_records_every_trial_once_and_the_best(distributed_search):
    outputs, project_dir = distributed_search
    worker_scores = dict(pair for t in WORKERS for pair in outputs[t]["scores"])
    trials = []
    for path in glob.glob(str(project_dir / "trial_*" / "trial.json")):
        with open(path) as f:
            trials.append(json.load(f))
    assert len(trials) == len(PAPER_GRIDS["label_relaxation"])
    assert {t["status"] for t in trials} == {"COMPLETED"}
    recorded = {t["hyperparameters"]["values"]["alpha"]: t["score"] for t in trials}
    assert recorded == pytest.approx(worker_scores, rel=0, abs=1e-12)
    chief_scores = dict(outputs["chief"]["scores"])
    assert chief_scores == pytest.approx(worker_scores, rel=0, abs=1e-12)
    assert outputs["chief"]["best"] == min(worker_scores, key=worker_scores.get)
