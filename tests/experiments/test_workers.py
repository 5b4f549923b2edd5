"""``UnitOracle``: the chief's side of a distributed run, called as keras-tuner's servicer calls it;
``UnitWorker``: a worker's side against a chief that serves another run.

In one process, without gRPC: workers are tuner ids ``"tuner0@KEY"``; their requests are the
oracle's ``create_trial``, ``get_trial`` (the heartbeat) and ``end_trial``. The end-to-end runs
over gRPC are in test_distributed_compare.py.
"""

import time

import pytest
from keras_tuner.src.engine.trial import TrialStatus

from keras_label_relaxation.experiments.workers import UnitOracle, UnitWorker, role

STATUS = TrialStatus
KEY = "run1"


def _oracle(lease_seconds=60.0, fail_on_done=(), **kwargs):
    done, lines = [], []

    def on_done(unit, worker):
        if unit in fail_on_done:
            raise FileNotFoundError(f"no result file for {unit}")
        done.append((unit, worker))

    units = {
        "search a": {"kind": "search", "value": 0.1},
        "search b": {"kind": "search", "value": 0.2},
        "train": {"kind": "train"},
        "ts": {"kind": "ts"},
    }
    oracle = UnitOracle(
        units, {"train": ["search a", "search b"]}, KEY, on_done,
        lambda unit, worker: RuntimeError(f"{unit} failed on {worker}"),
        lease_seconds=lease_seconds, progress=lines.append, **kwargs,
    )  # fmt: skip
    return oracle, done, lines


def _ask(oracle, worker, key=KEY):
    return oracle.create_trial(f"{worker}@{key}")


def _unit(trial):
    return trial.hyperparameters.values


def _end(oracle, trial, status=STATUS.COMPLETED):
    trial.status = status
    oracle.end_trial(trial)


def test_units_are_handed_out_in_order_once_their_dependencies_are_done():
    oracle, done, _ = _oracle()
    first, second = _ask(oracle, "tuner0"), _ask(oracle, "tuner1")
    assert (_unit(first), _unit(second)) == ({"kind": "search", "value": 0.1},
                                             {"kind": "search", "value": 0.2})  # fmt: skip
    third = _ask(oracle, "tuner2")
    assert _unit(third) == {"kind": "ts"}  # "train" needs both searches
    assert _ask(oracle, "tuner3").status == STATUS.IDLE
    _end(oracle, first)
    assert _ask(oracle, "tuner3").status == STATUS.IDLE  # one search still running
    _end(oracle, second)
    fourth = _ask(oracle, "tuner3")
    assert _unit(fourth) == {"kind": "train"}
    _end(oracle, third)
    _end(oracle, fourth)
    assert [u for u, _ in done] == ["search a", "search b", "ts", "train"]
    assert not oracle.done()  # the workers have not been told yet
    for worker in ("tuner0", "tuner1", "tuner2", "tuner3"):
        assert _ask(oracle, worker).status == STATUS.STOPPED
    assert oracle.done() and oracle.error is None


def test_a_worker_of_another_run_waits_and_is_not_waited_for():
    oracle, _, lines = _oracle()
    assert _ask(oracle, "tuner9", key="other").status == STATUS.IDLE
    assert _ask(oracle, "tuner9", key="other").status == STATUS.IDLE
    assert sum("tuner9 asks for run other, not this run (run1)" in line for line in lines) == 1
    assert oracle.create_trial("tuner8").status == STATUS.IDLE  # no key at all
    for _ in range(4):
        trial = _ask(oracle, "tuner0")
        _end(oracle, trial)
    assert _ask(oracle, "tuner0").status == STATUS.STOPPED
    assert oracle.done()


def test_a_silent_worker_loses_its_unit_to_the_next_that_asks():
    oracle, done, lines = _oracle(lease_seconds=0.2)
    lost = _ask(oracle, "tuner0")
    kept = _ask(oracle, "tuner1")
    for _ in range(3):  # tuner1's heartbeats keep its lease; tuner0 is silent
        time.sleep(0.1)
        oracle.get_trial(kept.trial_id)
    oracle.expire()
    assert any(line.startswith("search a: tuner0 was silent for") for line in lines)
    again = _ask(oracle, "tuner1")  # tuner1 still holds "search b": it gets it back
    assert again.trial_id == kept.trial_id
    _end(oracle, kept)
    retry = _ask(oracle, "tuner1")
    assert _unit(retry) == _unit(lost) and retry.trial_id != lost.trial_id
    # The silent worker was only slow: its late report counts, the copy's is then ignored.
    _end(oracle, lost)
    _end(oracle, retry)
    assert [u for u, _ in done] == ["search b", "search a"]
    assert "tuner0" not in oracle.workers  # not waited for
    for _ in range(2):
        _end(oracle, _ask(oracle, "tuner1"))
    assert _ask(oracle, "tuner1").status == STATUS.STOPPED
    assert oracle.done() and len(done) == 4


def test_a_restarted_worker_gets_its_unit_back():
    oracle, _, _ = _oracle()
    trial = _ask(oracle, "tuner0")
    assert _ask(oracle, "tuner0").trial_id == trial.trial_id


def test_a_failed_unit_stops_the_run_with_its_error():
    oracle, done, _ = _oracle()
    failing, running = _ask(oracle, "tuner0"), _ask(oracle, "tuner1")
    _end(oracle, failing, STATUS.FAILED)
    assert str(oracle.error) == "search a failed on tuner0"
    stopped = _ask(oracle, "tuner2")  # nothing new is handed out, and the error is said
    assert stopped.status == STATUS.STOPPED
    assert stopped.hyperparameters.values == {"error": "search a failed on tuner0"}
    assert not oracle.done()  # tuner1 still trains
    _end(oracle, running)
    assert _ask(oracle, "tuner1").status == STATUS.STOPPED
    assert oracle.done() and [u for u, _ in done] == ["search b"]


def test_a_unit_reported_done_without_its_result_stops_the_run():
    oracle, _, _ = _oracle(fail_on_done={"search a"})
    _end(oracle, _ask(oracle, "tuner0"))
    assert isinstance(oracle.error, FileNotFoundError)
    assert _ask(oracle, "tuner0").status == STATUS.STOPPED and oracle.done()


def test_role_needs_all_three_variables(monkeypatch):
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert role() is None
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    with pytest.raises(RuntimeError, match="KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT missing"):
        role()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    assert role() == "chief"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    assert role() == "worker"


# A worker's side (``UnitWorker``) against a chief serving another run, in one process: the
# oracle is the chief's own object, as keras-tuner's servicer would call it over gRPC.
INFO = {"backend": "jax", "dtype_policy": "float32", "strategy": "default"}


@pytest.fixture
def no_cluster(monkeypatch):
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(name, raising=False)


def _worker(tmp_path, oracle, key="other", info=INFO, **kwargs):
    ran = []
    worker = UnitWorker(ran.append, key, str(tmp_path), lease_seconds=0.2, oracle=oracle,
                        run_info=info, **kwargs)  # fmt: skip
    return worker, ran


def _chief(finished_runs=()):
    oracle, _, lines = _oracle(run_info=INFO, finished_runs=finished_runs)
    return oracle, lines


def test_a_stranger_is_told_which_run_the_chief_serves(no_cluster):
    oracle, _ = _chief()
    trial = _ask(oracle, "tuner9", key="other")
    assert trial.status == STATUS.IDLE
    assert trial.hyperparameters.values == {"run_key": KEY, **INFO}
    assert _ask(oracle, "tuner0").hyperparameters.values == {"kind": "search", "value": 0.1}


def test_a_worker_the_chief_will_never_serve_ends_at_once(no_cluster, tmp_path):
    oracle, _ = _chief()
    worker, ran = _worker(tmp_path, oracle, info={**INFO, "dtype_policy": "mixed_bfloat16"})
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"serves run run1, not this worker's run \(other\), "
                                           r"and never will: it runs with "
                                           r"dtype_policy='float32', this worker with "
                                           r"dtype_policy='mixed_bfloat16'"):  # fmt: skip
        worker.run()
    assert time.monotonic() - started < 1.0 and not ran


def test_a_stranger_ends_when_the_directory_check_fails(no_cluster, tmp_path):
    oracle, _ = _chief()
    seen = []

    def on_other_run(served):
        seen.append(served)
        raise ValueError("out holds only the configuration of a different run")

    worker, ran = _worker(tmp_path, oracle, stranger_seconds=60, on_other_run=on_other_run)
    with pytest.raises(ValueError, match="holds only the configuration"):
        worker.run()
    assert seen == [{"run_key": KEY, **INFO}] and not ran


def test_a_stranger_waits_a_bounded_time_then_ends(no_cluster, tmp_path):
    oracle, chief_lines = _chief()
    lines = []
    worker, ran = _worker(tmp_path, oracle, stranger_seconds=0.3, progress=lines.append)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"has served run run1, not this worker's run "
                                           r"\(other\), for \d+ s: this worker's configuration "
                                           r"differs"):  # fmt: skip
        worker.run()
    assert 0.3 < time.monotonic() - started < 2.0 and not ran
    assert lines == [
        "The chief serves run run1, not this worker's run (other): waiting at most 0.3 s for "
        "it to move on (a later block of the same command)."
    ]
    assert sum("tuner0 asks for run other, not this run (run1)" in line
               for line in chief_lines) == 1  # fmt: skip


def test_a_worker_asking_for_a_run_the_chief_finished_stops(no_cluster, tmp_path):
    oracle, lines = _chief(finished_runs={"earlier"})
    worker, ran = _worker(tmp_path, oracle, key="earlier", stranger_seconds=0.3)
    worker.run()  # returns: told to stop, without an error
    assert not ran and "tuner0 asks for run earlier, which this chief finished: it stops." in lines
