"""A comparison run's state on disk: its configuration and its finished (seed, loss) units."""

import json
import os


class RunStore:
    """``config.json`` (what a run is) and ``trials.jsonl`` (its finished units, one per line).

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
        else:
            with open(config_path, "w") as f:
                json.dump(config, f, indent=2, sort_keys=True)
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
