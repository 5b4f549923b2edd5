"""``klr reproduce``: a block of the paper's Table 1 or 2 with its preset, beside its numbers."""

import dataclasses

from keras_label_relaxation import models
from keras_label_relaxation.datasets.pipeline import AUGMENTED_DATASETS
from keras_label_relaxation.datasets.protocol import load, subset
from keras_label_relaxation.experiments import paper
from keras_label_relaxation.experiments.compare import compare
from keras_label_relaxation.experiments.outputs import format_mean_std, format_score, interval_note

#: ``quick=True``: one seed, this many training examples, this many epochs.
QUICK_EXAMPLES = 5000
QUICK_EPOCHS = 2


@dataclasses.dataclass
class Reproduction:
    """One (data set, model, optimisation scheme) block: our results and the paper's rows."""

    table: str
    dataset: str
    model: str
    optimize_for: str
    seeds: int
    epochs: int
    results: object
    published: dict

    def to_markdown(self):
        """Our accuracy and ECE (with bootstrap intervals and marks for differences from LR)
        next to the paper's, per loss (a dash where it has no row)."""
        lines = [
            "| loss | acc (ours) | acc (paper) | ECE (ours) | ECE (paper) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in self.results.summary:
            ref = self.published.get(row["loss"], {})
            lines.append(
                f"| {row['loss']} | {format_score(row, 'accuracy')} | "
                f"{format_mean_std(ref.get('acc'), ref.get('acc_std'))} | "
                f"{format_score(row, 'ece')} | "
                f"{format_mean_std(ref.get('ece'), ref.get('ece_std'))} |"
            )
        note = interval_note(self.results.summary)
        return "\n".join(lines + (["", note] if note else []))


def runs(table):
    """The ``(data set, model, optimize_for)`` blocks of ``table`` (``"table1"``, ``"table2"``)."""
    return [(d, m, o) for d, m in paper.PRESETS[table]["runs"] for o in ("acc", "ece")]


def reproduce(
    table, dataset, model, optimize_for, out_dir, quick=False, data_dir=None, verbose=0,
    augment=None, progress=print, lease_seconds=60.0,
):  # fmt: skip
    """Run one block of the paper's table with its preset (seeds, schedule, augmentation).

    Args:
        table: ``"table1"`` or ``"table2"``.
        dataset, model, optimize_for: The block (see ``runs(table)``).
        out_dir: The run's directory (``compare``'s ``out_dir``; reruns resume).
        quick: One seed, ``QUICK_EXAMPLES`` training examples and the schedule
            compressed to ``QUICK_EPOCHS`` epochs: a smoke run, not the paper's numbers.
        data_dir: tensorflow-datasets data directory.
        verbose: Keras' ``fit`` verbosity.
        augment: ``compare``'s ``augment`` (``None``: the paper's choice).
        progress: Callable receiving progress lines.
        lease_seconds: ``compare``'s lease of a distributed run's units.

    Returns:
        A ``Reproduction`` (its ``results`` ``None`` on a worker of a distributed
        run: see ``compare``).
    """
    seeds = 1 if quick else paper.PRESETS[table]["seeds"]
    data = subset(load(dataset, data_dir=data_dir), QUICK_EXAMPLES if quick else None)
    epochs, lr, multiplier, steps = paper.schedule(model, dataset)
    if quick:  # the schedule compressed to QUICK_EPOCHS
        steps = tuple(s * QUICK_EPOCHS / epochs for s in steps)
        epochs = QUICK_EPOCHS
    augmented = dataset in AUGMENTED_DATASETS if augment is None else augment
    progress(
        f"\n{table}: {model} on {dataset}, optimised for {optimize_for} ({seeds} seed(s), "
        f"{epochs} epochs{', augmented' if augmented else ''})"
    )
    results = compare(
        lambda shape, classes: models.get_model(model, shape, classes),
        data,
        seeds=seeds,
        optimize_for=optimize_for,
        epochs=epochs,
        batch_size=64,
        optimizer=lambda: paper.paper_sgd(lr),
        callbacks=lambda: [paper.PaperLearningRate(lr, multiplier, steps)],
        out_dir=out_dir,
        config={"table": table, "model": model, "quick": bool(quick)},
        verbose=verbose,
        augment=augment,
        progress=progress,
        lease_seconds=lease_seconds,
    )
    published = paper.paper_rows(table, dataset, model, optimize_for)
    return Reproduction(table, dataset, model, optimize_for, seeds, epochs, results, published)
