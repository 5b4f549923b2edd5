"""``klr compare`` as a chief and two workers on 127.0.0.1 (keras-tuner's distributed mode).

Every process runs the same command line; keras-tuner's environment variables give the roles
(``KERASTUNER_TUNER_ID``: ``chief``, ``tuner0``, ``tuner1``; ``KERASTUNER_ORACLE_IP``,
``KERASTUNER_ORACLE_PORT``). The reference is the same command in one process without them.
Each cluster has a deadline; every process still running at the end is killed.

Checked: the chief's table and results (all but the units' wall times) equal the single
process' on the same seeds; every unit (search trial, retraining, CE+TS) ran exactly once and
both workers took part; a worker killed (SIGKILL) in the middle of a unit loses nothing: the
chief re-queues the unit when its lease expires, the other worker runs it, the table is the
same; a unit that raises on a worker makes the chief raise, naming the unit and the worker's
traceback, and write no table; a worker of another configuration started before the chief
claims nothing (only the chief writes ``config.json``) and ends with an error naming what the
directory holds as soon as the chief answers, while the chief and its own worker finish.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import free_ports, run_processes

ARGS = [
    "compare", "--dataset", "digits", "--limit", "400", "--epochs", "2", "--losses", "ce,lr",
    "--seeds", "1", "--lease-seconds", "3",
]  # fmt: skip
# CE, CE+TS, LR's 7 search trials and its retraining.
UNITS = 10
DEADLINE = 300  # seconds per cluster; one takes 20 to 40 on two shared cores
SCRIPT = os.path.join(os.path.dirname(__file__), "_compare_process.py")


def _env(tuner_id=None, port=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    if tuner_id is not None:
        env.update(
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(port),
            no_grpc_proxy="127.0.0.1",
        )
    return env


def _klr(*args):
    return [sys.executable, "-m", "keras_label_relaxation", *args]


def _read(path):
    with open(path) as f:
        return f.read()


def _run_cluster(tmp_path, command, kill=None, expect_failure=False):
    """Run ``command(tuner_id)`` as chief, tuner0 and tuner1: ``({id: log}, {id: exit code})``.

    ``kill(logs)`` is polled while they run and names a process to SIGKILL (or ``None``).
    ``expect_failure``: non-zero exits are the test's to check, and the run ends 10 s after the
    chief exits (a worker slower to start than the chief's lingering lease may still wait).
    """
    (port,) = free_ports()
    commands = {t: (command(t), _env(t, port)) for t in ("chief", "tuner0", "tuner1")}
    until = "chief" if expect_failure else None
    return run_processes(
        commands, tmp_path, DEADLINE, watch=kill, check=not expect_failure, until=until, grace=10
    )


def _results_without_times(out_dir):
    with open(out_dir / "results.json") as f:
        results = json.load(f)
    for record in results["records"]:
        del record["seconds"]
    return results


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    result = subprocess.run(
        _klr(*ARGS, "--out", str(out)), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _ran(log):
    return re.findall(r"^(.+): running$", log, flags=re.M)


def test_a_chief_and_two_workers_write_the_single_process_table(single_process, tmp_path):
    out = tmp_path / "run"
    logs, _ = _run_cluster(tmp_path, lambda _: _klr(*ARGS, "--out", str(out)))
    assert _read(out / "table.md") == _read(single_process / "table.md")
    assert _results_without_times(out) == _results_without_times(single_process)
    # Every unit ran exactly once, on a worker; both workers took part; the chief ran none.
    ran = _ran(logs["tuner0"]) + _ran(logs["tuner1"])
    assert len(ran) == UNITS and len(set(ran)) == UNITS, ran
    assert _ran(logs["tuner0"]) and _ran(logs["tuner1"]) and not _ran(logs["chief"])
    assert len(re.findall(r": done by tuner\d \(\d+/10\)$", logs["chief"], flags=re.M)) == UNITS
    assert "| CE+TS (temperature = " in logs["chief"]  # the chief prints the table
    assert "the chief writes the results" in logs["tuner0"]


def test_a_worker_killed_in_the_middle_of_a_unit_loses_nothing(single_process, tmp_path):
    out = tmp_path / "run"
    victims = []

    def kill_a_worker_in_its_second_unit(logs):
        # The first worker whose first unit finished and whose second started: killed while it
        # trains (once; whichever worker got there first, as start-up times vary).
        for worker in ("tuner0", "tuner1")[: 0 if victims else 2]:
            lines = logs[worker].splitlines()
            started = [line for line in lines if line.endswith(": running")]
            finished = [line for line in lines if line.endswith(": done")]
            if len(started) == 2 and len(finished) == 1:
                victims.append(worker)
        return victims[0] if victims else None

    logs, _ = _run_cluster(
        tmp_path, lambda _: _klr(*ARGS, "--out", str(out)), kill=kill_a_worker_in_its_second_unit
    )
    (victim,) = victims[:1]
    other = "tuner1" if victim == "tuner0" else "tuner0"
    lost = _ran(logs[victim])[-1]
    assert f"{lost}: {victim} was silent for" in logs["chief"], logs["chief"]
    assert f"{lost}: done by {other}" in logs["chief"]
    assert lost in _ran(logs[other])
    assert _read(out / "table.md") == _read(single_process / "table.md")
    assert _results_without_times(out) == _results_without_times(single_process)


def test_a_unit_that_fails_on_a_worker_makes_the_chief_raise_naming_it(tmp_path):
    out = tmp_path / "run"

    def command(tuner_id):
        # The workers' trainings raise; the chief's configuration is the same.
        fail = [] if tuner_id == "chief" else ["fail"]
        return [sys.executable, SCRIPT, str(out), "3", *fail]

    logs, codes = _run_cluster(tmp_path, command, expect_failure=True)
    assert codes["chief"] not in (0, None)
    # A worker ends with its unit's error, or is told to stop, or (slower to start than the
    # chief's lingering) still waits for it when the test ends: none exits as if all went well.
    assert all(codes[t] != 0 for t in ("tuner0", "tuner1")), codes
    assert any(codes[t] is not None for t in ("tuner0", "tuner1")), codes
    match = re.search(r"RuntimeError: Unit '(train seed 0 CE|search seed 0 LR alpha=0\.05|"
                      r"search seed 0 LR alpha=0\.2|train seed 0 CE\+TS)' failed on tuner\d",
                      logs["chief"])  # fmt: skip
    assert match, logs["chief"][-3000:]
    assert "deliberate failure of a unit" in logs["chief"]
    told = [t for t in ("tuner0", "tuner1") if "The chief stopped the run: Unit '" in logs[t]]
    failed = [t for t in ("tuner0", "tuner1") if "RuntimeError: deliberate failure" in logs[t]]
    ended = {t for t in ("tuner0", "tuner1") if codes[t] is not None}
    assert failed and set(told) | set(failed) >= ended
    assert not (out / "table.md").exists()


# ``python -c _START_AFTER LOG TEXT ARGV...`` runs ARGV once LOG contains TEXT (or after 120 s).
_START_AFTER = """
import os, sys, time
log, text, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
end = time.monotonic() + 120
while time.monotonic() < end and not (os.path.exists(log) and text in open(log).read()):
    time.sleep(0.1)
os.execv(argv[0], argv)
"""


def test_a_worker_of_another_configuration_started_first_claims_nothing_and_ends(tmp_path):
    out = tmp_path / "run"
    args = list(ARGS)
    args[args.index("--losses") + 1] = "ce"  # 2 units: CE and CE+TS
    other = list(args)
    other[other.index("--epochs") + 1] = "1"  # another configuration
    (port,) = free_ports()
    # The chief and its worker start once the stranger asks for units (no chief listens yet).
    after = [sys.executable, "-c", _START_AFTER, str(tmp_path / "stranger.log"), "asking the chief"]
    commands = {
        "stranger": (_klr(*other, "--out", str(out)), _env("tuner1", port)),
        "chief": ([*after, *_klr(*args, "--out", str(out))], _env("chief", port)),
        "tuner0": ([*after, *_klr(*args, "--out", str(out))], _env("tuner0", port)),
    }
    logs, codes = run_processes(commands, tmp_path, DEADLINE, check=False)
    assert codes == {"stranger": 2, "chief": 0, "tuner0": 0}, {
        n: t[-3000:] for n, t in logs.items()
    }
    error = next(line for line in logs["stranger"].splitlines() if "klr compare: error:" in line)
    assert re.search(r"The chief serves run \w+, not this worker's run \(\w+\): .*run holds "
                     r"(only the configuration of a different run|results of a different "
                     r"configuration) \(.*differing: epochs", error), error  # fmt: skip
    assert len(re.findall(r"tuner1 asks for run \w+, not this run", logs["chief"])) == 1
    assert json.loads((out / "config.json").read_text())["epochs"] == 2  # the chief's
    assert (out / "table.md").exists() and len(_ran(logs["tuner0"])) == 2
