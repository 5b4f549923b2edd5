"""A comparison run's state on disk: its configuration, finished (seed, loss) units, outcomes."""

import json
import os

import numpy as np


class RunStore:
    """``config.json`` (what a run is), ``trials.jsonl`` (its finished units, one per line)
    and ``outcomes/`` (per unit, each test example's confidence and correctness).

    A directory belongs to one configuration, which the process that opens a
    ``RunStore`` on it first claims (writes): a single process, or the chief
    of a distributed run (its workers only ``check_config``). Opening it with
    another configuration raises, naming the differing keys and what the
    directory holds. Units are appended and synced as they finish, so an
    interrupted run resumes from the last one.

    Args:
        out_dir: The run's directory (created if missing).
        config: JSON-serialisable description of the run.
    """

    def __init__(self, out_dir, config):
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        if not check_config(out_dir, config):
            # atomically: two processes may claim it at once (the last one's copy stays)
            text = json.dumps(config, indent=2, sort_keys=True).encode()
            write_atomically(_config_path(out_dir), lambda f: f.write(text))
        self.path = os.path.join(out_dir, "trials.jsonl")
        #: ``{(seed, loss label): record}`` of the finished units.
        self.done = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    if line.strip():
                        record = json.loads(line)
                        self.done[(record["seed"], record["loss"])] = record

    def add(self, record):
        """Append a finished unit (a dict with ``seed`` and ``loss``) and sync it to disk."""
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[(record["seed"], record["loss"])] = record

    @staticmethod
    def _outcomes_path(out_dir, seed, label):
        safe = label.replace("+", "_")
        return os.path.join(out_dir, "outcomes", f"seed{seed}_{safe}.npz")

    @staticmethod
    def write_outcomes(out_dir, seed, label, confidence, correct):
        """Write a unit's per-example top-label confidence and correctness, atomically
        (a worker of a distributed run writes them for the chief's store)."""
        arrays = dict(confidence=np.asarray(confidence), correct=np.asarray(correct))
        write_atomically(
            RunStore._outcomes_path(out_dir, seed, label), lambda f: np.savez(f, **arrays)
        )

    def save_outcomes(self, seed, label, confidence, correct):
        """Store a unit's per-example top-label confidence and correctness (before ``add``)."""
        self.write_outcomes(self.out_dir, seed, label, confidence, correct)

    def outcomes(self, seed, label):
        """``(confidence, correct)`` of a unit, or ``None`` (a run from before they were kept)."""
        path = self._outcomes_path(self.out_dir, seed, label)
        if not os.path.exists(path):
            return None
        with np.load(path) as stored:
            return stored["confidence"], stored["correct"]


def _config_path(out_dir):
    return os.path.join(out_dir, "config.json")


def check_config(out_dir, config):
    """Whether ``out_dir`` holds the configuration ``config``; reads only.

    Returns:
        ``True`` when its ``config.json`` equals ``config``, ``False`` when it
        has none (no run claimed the directory yet).

    Raises:
        ValueError: when it holds another configuration, naming the differing
            keys and what the directory holds: finished results, or only the
            configuration another run claimed it with (that run may still be
            starting or running).
    """
    path = _config_path(out_dir)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        stored = json.load(f)
    if stored == config:
        return True
    differing = ", ".join(
        sorted(k for k in set(stored) | set(config) if stored.get(k) != config.get(k))
    )
    held = _results_held(out_dir)
    if held:
        raise ValueError(
            f"{out_dir} holds results of a different configuration (differing: {differing}): "
            f"{held}. Use another --out directory, or delete it to start over."
        )
    raise ValueError(
        f"{out_dir} holds only the configuration of a different run (config.json, differing: "
        f"{differing}; no results yet): that run claimed the directory and may still be "
        "starting or running. Use another --out directory, or, if that run is gone, delete it "
        "to start over."
    )


def _results_held(out_dir):
    """What results ``out_dir`` holds, in words (empty when none)."""
    held = []
    path = os.path.join(out_dir, "trials.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            finished = sum(1 for line in f if line.strip())
        if finished:
            held.append(f"{finished} finished (seed, loss) unit(s) in trials.jsonl")
    units = os.path.join(out_dir, "units")  # a distributed run's finished units
    if os.path.isdir(units):
        finished = sum(1 for name in os.listdir(units) if name.endswith(".json"))
        if finished:
            held.append(f"{finished} finished unit(s) of a distributed run in units/")
    tuner = os.path.join(out_dir, "tuner")  # a single process' searches
    if os.path.isdir(tuner) and os.listdir(tuner):
        held.append(f"{len(os.listdir(tuner))} search(es) in tuner/")
    return ", ".join(held)


def write_atomically(path, write):
    """Write a file through ``write(file object)`` so that readers see all of it or nothing."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
