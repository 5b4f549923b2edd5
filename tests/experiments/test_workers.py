"""``UnitOracle``: the chief's side of a distributed run, called as keras-tuner's servicer calls it.

In one process, without gRPC: workers are tuner ids ``"tuner0@KEY"``; their requests are the
oracle's ``create_trial``, ``get_trial`` (the heartbeat) and ``end_trial``. The end-to-end runs
over gRPC are in test_distributed_compare.py.
"""

import time

import pytest
from keras_tuner.src.engine.trial import TrialStatus

from keras_label_relaxation.experiments.workers import UnitOracle, role

STATUS = TrialStatus
KEY = "run1"


def _oracle(lease_seconds=60.0, fail_on_done=()):
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
        lease_seconds=lease_seconds, progress=lines.append,
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
