"""Units of work spread over machines through keras-tuner's distributed mode.

keras-tuner runs a search as a *chief*, which serves an oracle over gRPC, and
*workers*, which ask the oracle for trials, run them and report back; the
roles come from the environment variables ``KERASTUNER_TUNER_ID``
(``"chief"``, or one id per worker: ``"tuner0"``, ``"tuner1"``, ...),
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` (the chief's address).
Here a trial is one unit of a comparison run (a search trial, a retraining, a
temperature-scaling fit): ``UnitOracle`` hands out units whose dependencies
are finished, ``UnitWorker`` runs them.

What keras-tuner lacks and this module adds: a worker that dies keeps its
trial forever there (keras-tuner has no heartbeat; only a worker restarted
under the same id gets it back) and the chief waits for it forever. Here a
worker sends a heartbeat (``oracle.get_trial``) while it runs a unit; a unit
whose worker was silent for ``lease_seconds`` goes back to the queue for the
next worker that asks, and the silent worker is no longer waited for. A
unit that runs twice (its first worker was only slow) writes the same result
twice: results are written atomically and the second report is ignored.

Results travel through files: every process must see the run's directory
(one machine, or a file system all machines mount).
"""

import os
import threading
import time
import traceback

import keras_tuner

# keras-tuner's BaseTuner, Trial and gRPC servicer: public paths differ between 1.4.0 and 1.4.8
# (``keras_tuner.engine.base_tuner`` is not exported in 1.4.0); ``keras_tuner.src`` holds them
# in every 1.4 release (setup.cfg pins keras-tuner>=1.4,<1.5).
from keras_tuner.src.engine.base_tuner import BaseTuner
from keras_tuner.src.engine.trial import Trial, TrialStatus

#: keras-tuner's distributed-mode environment variables: a tuner's id, the chief's address.
ENV_VARS = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def role():
    """``"chief"``, ``"worker"`` or ``None`` (not distributed), from the environment."""
    present = [name for name in ENV_VARS if os.environ.get(name)]
    if not present:
        return None
    if len(present) < len(ENV_VARS):
        missing = sorted(set(ENV_VARS) - set(present))
        raise RuntimeError(
            f"keras-tuner's distributed mode needs all of {', '.join(ENV_VARS)}; "
            f"{', '.join(present)} set, {', '.join(missing)} missing."
        )
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


class UnitOracle(keras_tuner.Oracle):
    """Hands out the units of a run as keras-tuner trials, each once its dependencies are done.

    A trial's hyperparameters are the unit's fields (``Fixed`` values). A
    worker asks with its tuner id followed by ``@`` and the run's key. A
    worker of another run is not waited for: one asking for a run this
    process finished before (a worker slower than the chief through the blocks
    of ``klr reproduce``) is told to stop (``STOPPED``, no error); any other
    (the next block of ``klr reproduce``, or a different command line) is told
    to wait (``IDLE``) and which run this chief serves: ``run_key`` and
    ``run_info`` as the trial's hyperparameters, from which ``UnitWorker``
    decides whether to wait or to end with an error.

    Args:
        units: ``{unit id: {field: int, float or str}}`` in the order to run them.
        dependencies: ``{unit id: [unit ids it needs]}``.
        run_key: The run's key (a digest of its configuration).
        on_done: ``on_done(unit id, tuner id)``, called when a worker reports a
            unit finished; it reads the unit's result (raises if it is missing).
        on_failed: ``on_failed(unit id, tuner id)`` for a unit that raised on a
            worker; returns the error to raise on the chief.
        lease_seconds: A worker silent this long has lost its unit.
        progress: Callable receiving progress lines.
        run_info: ``{name: str}`` describing the run beyond its key (the
            backend, dtype policy and strategy), told to workers of other runs.
        finished_runs: Keys of the runs this process served to the end before.
    """

    def __init__(
        self, units, dependencies, run_key, on_done, on_failed, lease_seconds=60.0,
        progress=print, run_info=None, finished_runs=(),
    ):  # fmt: skip
        super().__init__(objective=keras_tuner.Objective("done", "max"), max_trials=None)
        self.units = dict(units)
        self.dependencies = {u: list(dependencies.get(u, ())) for u in self.units}
        self.run_key = run_key
        self.on_done = on_done
        self.on_failed = on_failed
        self.lease_seconds = float(lease_seconds)
        self.progress = progress or (lambda line: None)
        self.run_info = dict(run_info or {})
        self.finished_runs = frozenset(finished_runs)
        self.pending = list(self.units)
        self.finished = set()
        #: ``{tuner id: last time it was heard of}`` of the workers still taking part.
        self.workers = {}
        self.stopped = set()
        #: The error that stops the run (a unit failed on a worker), or ``None``.
        self.error = None
        self._running = {}  # trial id -> (unit id, tuner id)
        self._issued = {}  # trial id -> unit id
        self._strangers = set()

    def _key(self, tuner_id):
        worker, _, key = tuner_id.rpartition("@")
        return (worker, key) if worker else (tuner_id, "")

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        worker, key = self._key(tuner_id)
        if key != self.run_key:
            if key in self.finished_runs:
                self.progress(f"{worker} asks for run {key}, which this chief finished: it stops.")
                return self._trial(TrialStatus.STOPPED)
            if tuner_id not in self._strangers:
                self._strangers.add(tuner_id)
                self.progress(
                    f"{worker} asks for run {key or '(no key)'}, not this run ({self.run_key}): "
                    "it is told so (a later block of the same command waits; a worker of "
                    "another configuration, backend, dtype policy or strategy ends)."
                )
            return self._trial(TrialStatus.IDLE, {"run_key": self.run_key, **self.run_info})
        now = time.monotonic()
        self.workers[worker] = now
        self._expire(now)
        for trial_id, (_, holder) in self._running.items():
            if holder == worker:  # a worker restarted under its id gets its unit back
                return self.trials[trial_id]
        if self.error is not None or len(self.finished) == len(self.units):
            self.stopped.add(worker)
            # A run stopped by a failure says so, so that no worker ends as if all went well.
            error = {} if self.error is None else {"error": str(self.error).splitlines()[0]}
            return self._trial(TrialStatus.STOPPED, error)
        ready = [u for u in self.pending if all(d in self.finished for d in self.dependencies[u])]
        if not ready:
            return self._trial(TrialStatus.IDLE)
        unit = ready[0]
        self.pending.remove(unit)
        trial = self._trial(TrialStatus.RUNNING, self.units[unit])
        self.trials[trial.trial_id] = trial
        self._running[trial.trial_id] = (unit, worker)
        self._issued[trial.trial_id] = unit
        self.progress(f"{unit}: to {worker}")
        return trial

    def _trial(self, status, values=None):
        hp = keras_tuner.HyperParameters()
        for name, value in (values or {}).items():
            hp.Fixed(name, value)
        trial_id = f"{len(self.trials):05d}" if status == TrialStatus.RUNNING else "idle"
        return Trial(hp, trial_id=trial_id, status=status)

    @keras_tuner.synchronized
    def get_trial(self, trial_id):
        """A trial, by id; a worker's call while it runs its unit is its heartbeat."""
        if trial_id in self._running:
            self.workers[self._running[trial_id][1]] = time.monotonic()
        return self.trials[trial_id]

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        return self.get_trial(trial_id)

    @keras_tuner.synchronized
    def end_trial(self, trial):
        unit, worker = self._running.pop(trial.trial_id, (None, None))
        if unit is None:
            # Its lease expired, yet the worker finished: the result counts, the unit's copy
            # (queued or running elsewhere) is ignored when it reports.
            unit = self._issued[trial.trial_id]
            if trial.status != TrialStatus.COMPLETED:
                return
            if unit in self.pending:
                self.pending.remove(unit)
            worker = f"{trial.trial_id}'s worker (after its lease expired)"
        self.trials[trial.trial_id].status = trial.status
        if trial.status == TrialStatus.COMPLETED:
            if unit in self.finished:  # ran twice: the same result, reported again
                return
            try:
                self.on_done(unit, worker)
            except Exception as error:
                self.error = error
                return
            self.finished.add(unit)
            self.progress(f"{unit}: done by {worker} ({len(self.finished)}/{len(self.units)})")
        else:
            self.stopped.add(worker)  # a worker re-raises its unit's error and ends
            if self.error is None:
                self.error = self.on_failed(unit, worker)
                self.progress(f"{unit}: failed on {worker}; stopping the run")

    @keras_tuner.synchronized
    def expire(self):
        self._expire(time.monotonic())

    def _expire(self, now):
        for worker, seen in list(self.workers.items()):
            if now - seen <= self.lease_seconds or worker in self.stopped:
                continue
            del self.workers[worker]
            for trial_id, (unit, holder) in list(self._running.items()):
                if holder == worker:
                    del self._running[trial_id]
                    self.pending.insert(0, unit)
                    self.progress(
                        f"{unit}: {worker} was silent for {now - seen:.0f} s (lease "
                        f"{self.lease_seconds:g} s); the unit goes back to the queue"
                    )

    @keras_tuner.synchronized
    def done(self):
        """Whether the run is over: every unit finished (or one failed) and no worker waits."""
        over = self.error is not None or len(self.finished) == len(self.units)
        return over and not self._running and set(self.workers) <= self.stopped

    # The chief serves units only: keras-tuner's own space and scoring are unused.
    def populate_space(self, trial_id):  # pragma: no cover - create_trial does not call it
        raise NotImplementedError

    def save(self):
        pass

    def reload(self):
        pass


class UnitWorker(BaseTuner):
    """A keras-tuner tuner that serves (chief) or runs (worker) a run's units.

    On the chief, ``run()`` serves ``oracle`` until the run is over, and one
    lease longer for workers slow to start (keras-tuner's
    ``OracleServicer`` behind a gRPC server at ``KERASTUNER_ORACLE_IP``:
    ``KERASTUNER_ORACLE_PORT``). On a worker, ``run()`` asks the chief for
    units, runs each through ``run_unit(fields)`` while a thread sends
    heartbeats, and reports it finished or failed (re-raising the failure).

    A worker whose chief serves another run ends with an error instead of
    waiting for keras-tuner's one-hour client timeout: at once when the
    chief's ``run_info`` differs from its own (another backend, dtype policy
    or strategy: never served) or when ``on_other_run`` raises (``compare``'s
    check that the chief has not claimed this run's directory for another
    configuration), and after ``stranger_seconds`` of being told so otherwise
    (a later block of ``klr reproduce`` waits less: the chief lingers one lease
    after a block, then serves the next).

    Args:
        run_unit: ``run_unit(fields)``: runs one unit and writes its result
            (``None`` on the chief).
        run_key: The run's key, sent with the tuner id.
        directory: keras-tuner directory of this tuner.
        lease_seconds: The oracle's lease; heartbeats go every sixth of it,
            idle workers ask again every twentieth.
        oracle: The chief's ``UnitOracle`` (a worker talks to the chief's).
        run_info: ``{name: str}`` of this worker's run, compared with the
            chief's (``UnitOracle``'s ``run_info``).
        stranger_seconds: How long a worker waits while its chief serves one
            other run (``None``: as long as it takes).
        on_other_run: ``on_other_run({"run_key": ..., **chief's run_info})``,
            called whenever the chief says it serves another run; may raise.
        progress: Callable receiving progress lines.
    """

    def __init__(
        self, run_unit, run_key, directory, lease_seconds=60.0, oracle=None, run_info=None,
        stranger_seconds=None, on_other_run=None, progress=None,
    ):  # fmt: skip
        oracle = oracle or UnitOracle({}, {}, run_key, None, None, lease_seconds)
        super().__init__(oracle, directory=directory, project_name="units", overwrite=True)
        self.run_unit = run_unit
        self.run_key = run_key
        self.tuner_id = f"{self.tuner_id}@{run_key}"
        self.lease_seconds = float(lease_seconds)
        self.run_info = dict(run_info or {})
        self.stranger_seconds = stranger_seconds
        self.on_other_run = on_other_run
        self.progress = progress or (lambda line: None)
        #: The units this process ran.
        self.ran = []
        self._other_run = None  # (the other run's key, when the chief first said so)

    def run(self):
        if role() == "chief":
            serve(
                self.oracle,
                poll_seconds=min(0.5, self.lease_seconds / 20),
                linger_seconds=self.lease_seconds,
            )
            return
        while True:
            trial = self.oracle.create_trial(self.tuner_id)
            if trial.status == TrialStatus.STOPPED:
                error = trial.hyperparameters.values.get("error")
                if error is not None:
                    raise RuntimeError(f"The chief stopped the run: {error}")
                return
            if trial.status == TrialStatus.IDLE:
                self._check_other_run(trial.hyperparameters.values)
                time.sleep(self.lease_seconds / 20)
                continue
            self._other_run = None
            fields = trial.hyperparameters.values
            try:
                with _Heartbeat(self.oracle, trial.trial_id, self.lease_seconds / 6):
                    self.run_unit(fields)
            except BaseException:
                trial.status = TrialStatus.FAILED
                self.oracle.end_trial(trial)
                raise
            self.ran.append(fields)
            trial.status = TrialStatus.COMPLETED
            self.oracle.end_trial(trial)

    def _check_other_run(self, served):
        """Raise if the chief, serving the run ``served`` describes, will never serve this one."""
        other = served.get("run_key", self.run_key)
        if other == self.run_key:  # this run: its units are not ready yet
            self._other_run = None
            return
        chief = "The chief" + _address()
        differing = [k for k in sorted(self.run_info) if served.get(k) != self.run_info[k]]
        if differing:
            raise RuntimeError(
                f"{chief} serves run {other}, not this worker's run ({self.run_key}), and never "
                "will: it runs with "
                + ", ".join(f"{k}={served.get(k)!r}" for k in differing)
                + ", this worker with "
                + ", ".join(f"{k}={self.run_info[k]!r}" for k in differing)
                + ". Start every process of a run with the same backend, dtype policy and "
                "strategy."
            )
        if self.on_other_run is not None:
            self.on_other_run(served)
        now = time.monotonic()
        if self._other_run is None or self._other_run[0] != other:
            self._other_run = (other, now)
            self.progress(
                f"{chief} serves run {other}, not this worker's run ({self.run_key}): waiting "
                + ("" if self.stranger_seconds is None else f"at most {self.stranger_seconds:g} s ")
                + "for it to move on (a later block of the same command)."
            )
        waited = now - self._other_run[1]
        if self.stranger_seconds is not None and waited > self.stranger_seconds:
            raise RuntimeError(
                f"{chief} has served run {other}, not this worker's run ({self.run_key}), for "
                f"{waited:.0f} s: this worker's configuration differs from the chief's (another "
                "command line or --out, other data or settings). Start every process of a run "
                "with the same command."
            )

    def run_trial(self, trial, *args, **kwargs):  # pragma: no cover - run() runs the units
        raise NotImplementedError


def _address():
    """`` at IP:PORT`` of the chief from keras-tuner's variables (empty without them)."""
    ip, port = (os.environ.get(k) for k in ENV_VARS[1:])
    return f" at {ip}:{port}" if ip and port else ""


class _Heartbeat:
    """A thread calling ``oracle.get_trial(trial_id)`` every ``interval`` seconds."""

    def __init__(self, oracle, trial_id, interval):
        self.oracle, self.trial_id, self.interval = oracle, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self._stop.wait(self.interval):
            try:
                self.oracle.get_trial(self.trial_id)
            except Exception:  # the chief is gone: the unit's own report will fail loudly
                traceback.print_exc()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def serve(oracle, poll_seconds=0.5, linger_seconds=0.0):
    """Serve ``oracle`` to the workers until ``oracle.done()``, then ``linger_seconds`` more.

    keras-tuner's own ``OracleServicer`` answers the workers; the loop around
    it is ours: keras-tuner's chief polls every 20 s and waits for every
    worker that ever asked, a dead one included, while this one expires
    silent workers (``oracle.expire()``) and stops once every unit is done.
    While it lingers, a worker slower to start than the run took (a run that
    was resumed finished, or stopped at a failure) is told to stop instead of
    waiting for keras-tuner's one-hour client timeout.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(OracleServicer(oracle), server)
    if not server.add_insecure_port(address):
        raise RuntimeError(
            f"The chief cannot listen on KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT = {address}."
        )
    server.start()
    try:
        while not oracle.done():
            time.sleep(poll_seconds)
            oracle.expire()
        time.sleep(linger_seconds)
    finally:
        server.stop(grace=2 * poll_seconds).wait()
