"""A comparison run spread over a chief and workers: its units, the chief's side, a worker's.

A distributed run's units are every search trial (seed, loss, grid value),
every retraining of a loss at its best value and every CE+TS fit. The chief
serves them as keras-tuner trials (``experiments.workers``); a worker runs
each through ``protocol.Run`` and writes its result under ``out_dir/units``,
where the chief reads it. Only the chief opens the run's ``RunStore`` (it
owns ``config.json``); a worker checks the directory's configuration and
writes nothing else there.
"""

import hashlib
import json
import math
import os
import tempfile
import traceback

import keras

from keras_label_relaxation import distribute
from keras_label_relaxation.experiments import workers
from keras_label_relaxation.experiments.protocol import TS_LABEL, loss_label, warning_lines
from keras_label_relaxation.experiments.store import RunStore, check_config, write_atomically
from keras_label_relaxation.losses.registry import LOSS_PARAMETERS

# Keys of the runs this process served as chief to the end: a worker still asking for one (it
# started late, or is slower through the blocks of ``klr reproduce``) is told to stop.
_FINISHED_RUNS = set()


def strategy_name():
    """How this process trains: ``DataParallel`` (JAX), a ``tf.distribute`` strategy, or neither."""
    if distribute.active():
        return "DataParallel"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
        return f"{type(strategy).__name__}x{strategy.num_replicas_in_sync}"
    return "default"


def run_info():
    """What the configuration does not hold but the numbers depend on: every process' must match."""
    return {
        "backend": keras.backend.backend(),
        "dtype_policy": keras.config.dtype_policy().name,
        "strategy": strategy_name(),
    }


def run_key(run_config):
    """The key of a distributed run: a digest of its configuration and ``run_info()``."""
    keyed = dict(run_config, **run_info())
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]


def stranger_seconds(lease_seconds):
    """How long a worker waits while its chief serves another run, then ends with an error.

    A worker a block ahead of its chief in ``klr reproduce`` waits at most
    about two leases: the chief tells the last workers the block is over
    (after a lease, for a silent one), lingers one lease, then serves the next.
    """
    return 2 * lease_seconds + 60


def unit_name(fields):
    """A unit's id: ``train seed 0 LR`` or ``search seed 0 LR alpha=0.1``."""
    label = loss_label(fields["loss"])
    if fields["kind"] == "train":
        return f"train seed {fields['seed']} {label}"
    param = LOSS_PARAMETERS[fields["loss"]]
    return f"search seed {fields['seed']} {label} {param}={fields['value']!r}"


def unit_plan(run, units):
    """``({unit id: fields}, {unit id: [unit ids it needs]})`` of (seed, loss) ``units``."""
    plan, needs = {}, {}
    for seed, name in units:
        searches = []
        if name != TS_LABEL:
            for value in run.grid(name) or ():
                fields = {"kind": "search", "seed": seed, "loss": name, "value": value}
                plan[unit_name(fields)] = fields
                searches.append(unit_name(fields))
        fields = {"kind": "train", "seed": seed, "loss": name}
        plan[unit_name(fields)] = fields
        needs[unit_name(fields)] = searches
    return plan, needs


def unit_path(out_dir, unit, suffix=".json"):
    """Where a unit's result (``.json``) or traceback (``.error``) lives."""
    return os.path.join(out_dir, "units", unit.replace(" ", "_").replace("+", "_") + suffix)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def search_scores(run, seed, name):
    """``{value: score}`` (NaN for a diverged trial) of the search units of (seed, loss)."""
    scores = {}
    for unit, fields in unit_plan(run, [(seed, name)])[0].items():
        if fields["kind"] == "search":
            score = _read_json(unit_path(run.out_dir, unit))["score"]
            scores[fields["value"]] = math.nan if score is None else score
    return dict(sorted(scores.items()))


def run_as_worker(run, run_config, lease_seconds, progress):
    """Ask the chief for units and run them until it says the run is over; the units run.

    Raises ``ValueError`` when ``run.out_dir`` holds another configuration
    (before asking, and whenever the chief says it serves another run: it
    claimed the directory meanwhile), and ``RuntimeError`` when the chief will
    not serve this run (``workers.UnitWorker``).
    """
    check_config(run.out_dir, run_config)  # the chief writes config.json; a worker only reads
    key = run_key(run_config)

    def on_other_run(served):
        try:
            check_config(run.out_dir, run_config)
        except ValueError as error:
            raise ValueError(
                f"The chief serves run {served['run_key']}, not this worker's run ({key}): {error}"
            ) from None

    def run_unit(fields):
        seed, name = fields["seed"], fields["loss"]
        unit = unit_name(fields)
        progress(f"{unit}: running")
        try:
            if fields["kind"] == "search":
                score = run.search_trial(name, seed, fields["value"])
                result = {"score": score if math.isfinite(score) else None}
            else:
                scores = None if name == TS_LABEL else search_scores(run, seed, name)
                result = run.unit(seed, name, scores)
                RunStore.write_outcomes(
                    run.out_dir, seed, loss_label(name), *result.pop("outcomes")
                )
            write_atomically(
                unit_path(run.out_dir, unit), lambda f: f.write(json.dumps(result).encode())
            )
            if os.path.exists(unit_path(run.out_dir, unit, ".error")):  # from an earlier try
                os.remove(unit_path(run.out_dir, unit, ".error"))
        except Exception:
            text = traceback.format_exc()
            write_atomically(
                unit_path(run.out_dir, unit, ".error"), lambda f: f.write(text.encode())
            )
            raise
        for line in warning_lines(result):
            progress(f"{unit}: {line}")
        progress(f"{unit}: done")

    progress(
        f"Worker {os.environ['KERASTUNER_TUNER_ID']} of run {key}: asking the chief at "
        f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']} for units"
    )
    worker = workers.UnitWorker(
        run_unit, key, tempfile.mkdtemp(prefix="klr-worker-"), lease_seconds,
        run_info=run_info(), stranger_seconds=stranger_seconds(lease_seconds),
        on_other_run=on_other_run, progress=progress,
    )  # fmt: skip
    worker.run()
    return worker.ran


def run_as_chief(run, units, store, run_config, lease_seconds, progress):
    """Serve the units not done before to the workers; store every finished (seed, loss)."""
    key = run_key(run_config)
    plan, needs = unit_plan(run, units)
    todo = {}
    for unit, fields in plan.items():
        seed, label = fields["seed"], loss_label(fields["loss"])
        path = unit_path(run.out_dir, unit)
        if fields["kind"] == "train" and (seed, label) not in store.done and os.path.exists(path):
            if store.outcomes(seed, label) is not None:  # written, but the chief stopped first
                store.add(_read_json(path))
        if (seed, label) in store.done:
            continue
        if fields["kind"] == "search" and os.path.exists(path):
            continue
        todo[unit] = fields
    needs = {u: [d for d in needs.get(u, ()) if d in todo] for u in todo}

    def on_done(unit, worker):
        fields = plan[unit]
        result = _read_json(unit_path(run.out_dir, unit))  # raises if the worker wrote none
        if fields["kind"] == "train":
            if store.outcomes(result["seed"], result["loss"]) is None:
                raise RuntimeError(f"{unit}: {worker} reported it done but wrote no outcomes.")
            store.add(result)
            done = f"seed {result['seed']}, {result['loss']}"
            progress(f"{done}: accuracy {result['accuracy']:.4f}, ECE {result['ece']:.4f}")
            for line in warning_lines(result):
                progress(f"{done}: {line}")

    def on_failed(unit, worker):
        path = unit_path(run.out_dir, unit, ".error")
        text = open(path).read() if os.path.exists(path) else "(no traceback written)"
        return RuntimeError(f"Unit {unit!r} failed on {worker}:\n{text}")

    progress(
        f"Chief of run {key}: {len(todo)} of {len(plan)} units to run, served at "
        f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    )
    oracle = workers.UnitOracle(
        todo, needs, key, on_done, on_failed, lease_seconds=lease_seconds, progress=progress,
        run_info=run_info(), finished_runs=_FINISHED_RUNS,
    )  # fmt: skip
    chief = workers.UnitWorker(
        None, key, tempfile.mkdtemp(prefix="klr-chief-"), lease_seconds, oracle=oracle
    )
    chief.run()
    if oracle.error is not None:
        raise oracle.error
    _FINISHED_RUNS.add(key)
