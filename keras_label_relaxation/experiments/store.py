"""A comparison run's state on disk: its configuration, finished (seed, loss) units, outcomes."""

import json
import os

import numpy as np


class RunStore:
    """``config.json`` (what a run is), ``trials.jsonl`` (its finished units, one per line)
    and ``outcomes/`` (per unit, each test example's confidence and correctness).

    A directory belongs to one configuration: opening it with another raises,
    naming the differing keys. Units are appended and synced as they finish,
    so an interrupted run resumes from the last one.

    Args:
        out_dir: The run's directory (created if missing).
        config: JSON-serialisable description of the run.
    """

    def __init__(self, out_dir, config):
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        config_path = os.path.join(out_dir, "config.json")
        if os.path.exists(config_path):
            with open(config_path) as f:
                stored = json.load(f)
            if stored != config:
                differing = sorted(
                    k for k in set(stored) | set(config) if stored.get(k) != config.get(k)
                )
                raise ValueError(
                    f"{out_dir} holds results of a different configuration (differing: "
                    f"{', '.join(differing)}). Use another --out directory, or delete it to "
                    "start over."
                )
        else:  # atomically: the processes of a distributed run may open it at once
            text = json.dumps(config, indent=2, sort_keys=True).encode()
            write_atomically(config_path, lambda f: f.write(text))
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


def write_atomically(path, write):
    """Write a file through ``write(file object)`` so that readers see all of it or nothing."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
