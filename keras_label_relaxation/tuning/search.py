"""The paper's parameter search: a grid over a 1/6 hold-out, scored at the final epoch."""

import copy
import functools
import math

import keras
import keras_tuner

from keras_label_relaxation.datasets.protocol import HOLDOUT_FRACTION, split_holdout
from keras_label_relaxation.tuning.hypermodel import get_objective


class ResumableGridSearchOracle(keras_tuner.oracles.GridSearchOracle):
    """keras-tuner's grid-search oracle, able to resume a search interrupted mid-trial.

    keras-tuner 1.4's ``GridSearchOracle`` keeps the grid order (a linked list
    of trial ids) and the queue of trials whose successor is still to be
    created in memory only. Reloaded from its directory, it loses both: a run
    interrupted during a trial fails on resume with ``KeyError`` (its retried
    trial is missing from the order, keras-team/keras-tuner#1055), and a run
    stopped between trials stops without running the rest of the grid. This
    oracle rebuilds both from the reloaded trials.
    """

    def reload(self):
        super().reload()
        missing = [a for a in ("_ordered_ids", "_populate_next") if not hasattr(self, a)]
        if missing:  # the internals this class rebuilds (keras-tuner 1.4; setup.cfg pins <1.5)
            raise RuntimeError(
                f"keras-tuner {keras_tuner.__version__}'s GridSearchOracle lacks {missing}, which "
                "ResumableGridSearchOracle rebuilds to resume a search; keras-label-relaxation "
                "is tested with keras-tuner 1.4."
            )
        ids = sorted(
            self.trials,
            key=functools.cmp_to_key(
                lambda a, b: self._compare(
                    self.trials[a].hyperparameters.values, self.trials[b].hyperparameters.values
                )
            ),
        )
        ordered = type(self._ordered_ids)()
        for trial_id in ids:
            ordered.insert(trial_id)
        self._ordered_ids = ordered
        self._populate_next = [t for t in ids if t in set(self.end_order)]


def replica_batch_size(batch_size, num_examples):
    """A global batch size whose *first* batch splits evenly over the replicas.

    Under a ``tf.distribute`` strategy (``MirroredStrategy``), Keras' ``fit`` and
    ``evaluate`` fail when the first batch does not split evenly over the
    replicas: an odd global batch, or fewer examples than one batch. Later
    batches may be ragged. So ``batch_size`` must be a multiple of the replica
    count, and a data set smaller than one batch gets the largest multiple of
    the replica count that fits (its remainder forms a second, short batch).
    Outside a strategy, and on the JAX and torch backends, ``batch_size`` is
    returned as it is.

    Example:
    >>> replica_batch_size(64, 1000)
    64
    """
    if keras.backend.backend() != "tensorflow":
        return batch_size
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return batch_size
    name = type(strategy).__name__
    if batch_size % replicas:
        raise ValueError(
            f"Invalid value for argument `batch_size`: the global batch must split evenly over "
            f"the {replicas} replicas of {name}. Received: batch_size={batch_size}"
        )
    if num_examples < replicas:
        raise ValueError(
            f"{name} with {replicas} replicas needs at least {replicas} examples per data "
            f"set. Received: {num_examples} examples"
        )
    return batch_size if num_examples >= batch_size else num_examples - num_examples % replicas


class FinalEpochGridSearch(keras_tuner.Tuner):
    """Grid search that scores a trial by its *final* epoch, and resumes safely.

    keras-tuner takes the best epoch of a trial by default; the paper scores
    the last one. Every trial starts from ``keras.utils.set_random_seed(seed)``,
    so its score does not depend on the order the trials ran in, and a
    search resumed from its directory scores exactly as an uninterrupted one
    (the oracle is ``ResumableGridSearchOracle``).

    In keras-tuner's distributed mode (the ``KERASTUNER_TUNER_ID``,
    ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` environment
    variables) the chief's tuner serves the oracle and the workers' tuners run
    the trials; ``completed_trials`` holds the trials this tuner ran itself.

    Args:
        hypermodel: A ``keras_tuner.HyperModel``.
        objective: A ``keras_tuner.Objective``.
        seed: Seed of every trial.
        max_consecutive_failed_trials: Passed to the oracle.
        **kwargs: ``keras_tuner.Tuner`` arguments (``directory``,
            ``project_name``, ``overwrite``, ...).
    """

    def __init__(self, hypermodel, objective, seed=0, max_consecutive_failed_trials=1, **kwargs):
        oracle = ResumableGridSearchOracle(
            objective=objective,
            seed=seed,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self.trial_seed = seed
        #: ``{trial_id: (hyperparameters, final-epoch objective)}`` of the trials this tuner
        #: completed itself (in a distributed search, a worker's share of the grid).
        self.completed_trials = {}
        #: The exception of the last trial this tuner ran that raised, or ``None``.
        self.trial_error = None
        self._last_score = {}
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)

    @property
    def is_worker(self):
        """Whether this tuner is a worker of a distributed search (its oracle is the chief's)."""
        return not isinstance(self.oracle, keras_tuner.Oracle)

    def run_trial(self, trial, *args, callbacks=None, **kwargs):
        name = self.oracle.objective.name
        try:
            score = train_and_score(
                self.hypermodel, trial.hyperparameters, self.trial_seed, name, *args,
                callbacks=callbacks, **kwargs,
            )  # fmt: skip
        except Exception as error:
            self.trial_error = error  # for ``search`` to raise instead of keras-tuner's summary
            raise
        self._last_score[trial.trial_id] = score
        if math.isnan(score):
            # keras-tuner turns a NaN score into an invalid trial, which counts as a failure
            # and ends the search; the worst value keeps it a completed trial that cannot win.
            score = -math.inf if self.oracle.objective.direction == "max" else math.inf
        return {name: score}

    def on_trial_end(self, trial):
        score = self._last_score.pop(trial.trial_id, None)
        if trial.status == "COMPLETED" and score is not None:
            self.completed_trials[trial.trial_id] = (trial.hyperparameters.copy(), score)
        super().on_trial_end(trial)


def train_and_score(hypermodel, hp, seed, objective, *fit_args, callbacks=None, **fit_kwargs):
    """Train ``hypermodel`` with ``hp`` from ``seed``; the final epoch's ``objective``.

    One trial of ``FinalEpochGridSearch``, also run alone (a search trial as a
    unit of a distributed ``compare``). The callbacks are deep-copied.

    Returns:
        The score, NaN when the trial diverged (``_final_score``).
    """
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    callbacks = _copy_callbacks(callbacks)
    history = hypermodel.fit(hp, model, *fit_args, callbacks=callbacks, **fit_kwargs)
    if objective not in history.history:
        raise ValueError(
            f"The objective {objective!r} is not among the logged metrics "
            f"{sorted(history.history)}."
        )
    return _final_score(history.history, objective)


def _copy_callbacks(callbacks):
    """A deep copy of the callbacks for one trial, as keras-tuner's own ``Tuner`` makes.

    One shared ``EarlyStopping`` or ``ModelCheckpoint`` would carry its state
    (best value, wait count, stopped epoch) from one trial into the next.
    """
    callbacks = list(callbacks or [])
    try:
        return copy.deepcopy(callbacks)
    except Exception as error:
        # keras-tuner's FatalValueError (a ValueError) ends the search instead of failing a trial.
        raise keras_tuner.errors.FatalValueError(
            "Every trial of a search trains with its own copy of the callbacks, so they must "
            "be deep-copyable (as in keras-tuner). Received: callbacks="
            f"{[type(c).__name__ for c in callbacks]}, which copy.deepcopy refused: {error}"
        ) from error


def _final_score(logs, name):
    """The final epoch's objective; NaN when the trial diverged.

    A trial diverged when its final training or validation loss is not finite:
    its other metrics (an accuracy of NaN logits, say) are finite but
    meaningless, so its score is NaN and it cannot win.
    """
    losses = [logs[k][-1] for k in ("loss", "val_loss") if logs.get(k)]
    score = float(logs[name][-1])
    return score if all(math.isfinite(v) for v in [score, *losses]) else math.nan


def best_value(scores, direction):
    """The best grid value of ``{value: score}``: non-finite scores (diverged trials) never win.

    Ties go to the first value in ``scores``' order.

    Args:
        scores: ``{value: score}``.
        direction: ``"max"`` or ``"min"``.

    Raises:
        ValueError: when no score is finite (every trial diverged), naming them.

    Example:
    >>> best_value({0.1: 0.9, 0.2: float("nan"), 0.3: 0.8}, "max")
    0.1
    """
    finite = {v: s for v, s in scores.items() if math.isfinite(s)}
    if not finite:
        raise ValueError(
            f"Every trial of the search diverged (no finite score): scores={scores}. Lower the "
            "learning rate or the grid's largest values."
        )
    pick = max if direction == "max" else min
    return pick(finite, key=finite.get)


def search(
    hypermodel,
    x,
    y,
    optimize_for="acc",
    epochs=10,
    batch_size=64,
    seed=0,
    directory=None,
    project_name="search",
    holdout_fraction=HOLDOUT_FRACTION,
    callbacks=None,
    verbose=0,
    validation_data=None,
):
    """Grid-search the loss parameter of ``hypermodel`` on a hold-out of ``(x, y)``.

    ``holdout_fraction`` (the paper: 1/6) of the training data is held out
    (seeded); every grid value is trained on the rest and scored by its final
    epoch's ``val_accuracy`` (``optimize_for="acc"``) or ``val_ece``
    (``"ece"``). State lives in ``directory/project_name``: calling again with
    the same directory resumes and never repeats a finished trial.

    Distributed search: run the same call in a chief and in workers whose
    environments set keras-tuner's ``KERASTUNER_TUNER_ID`` (``"chief"``, then
    one id per worker: ``"tuner0"``, ``"tuner1"``...), ``KERASTUNER_ORACLE_IP``
    and ``KERASTUNER_ORACLE_PORT`` (the chief's address). The chief serves the
    grid (each value goes to exactly one worker) until every worker that asked
    for a trial has been told the grid is done; then it returns the result.
    Start the workers with the chief: one that first asks after the chief has
    returned waits for it (keras-tuner's client gives up after an hour).

    Args:
        hypermodel: A ``LossHyperModel``.
        x, y: Training data (labels as the hypermodel expects them).
        optimize_for: ``"acc"`` or ``"ece"``.
        epochs, batch_size: Training of each trial.
        seed: Seed of the hold-out split and of every trial.
        directory: keras-tuner directory (``None``: a temporary one).
        project_name: keras-tuner project name.
        holdout_fraction: Share of ``(x, y)`` used for validation.
        callbacks: Keras callbacks for every trial's ``fit``; each trial
            trains with its own deep copy.
        verbose: Keras' ``fit`` verbosity.
        validation_data: ``(x_val, y_val)`` to score on instead of a
            hold-out of ``(x, y)``, which is then trained on whole (for a
            caller that splits itself, e.g. to centre both parts on the
            per-pixel mean of the training part, as ``compare`` does).

    Returns:
        ``(best_value, scores)``: the best parameter (``None`` for a loss
        without one) and ``{value: final-epoch objective}`` for every trial,
        NaN for a trial that diverged (its final ``loss`` or ``val_loss`` is
        not finite); such a trial never wins (``best_value``). A worker of a
        distributed search returns ``(None, scores)`` for the trials it ran
        itself.

    Raises:
        ValueError: when every trial diverged, naming the scores.
        Exception: the error of a trial that raised (it ends the search), as
            the trial raised it, rather than keras-tuner's "Number of
            consecutive failures exceeded the limit" around its traceback.
    """
    import tempfile

    objective = get_objective(optimize_for)
    _copy_callbacks(callbacks)  # refuse uncopyable callbacks before the first trial
    if validation_data is None:
        (x_fit, y_fit), (x_val, y_val) = split_holdout(x, y, holdout_fraction, seed)
    else:
        (x_fit, y_fit), (x_val, y_val) = (x, y), tuple(validation_data)
    if hypermodel.grid is None:
        return None, {}
    tuner = FinalEpochGridSearch(
        hypermodel,
        objective=objective,
        seed=seed,
        directory=directory or tempfile.mkdtemp(prefix="klr-search-"),
        project_name=project_name,
        overwrite=False,
    )
    try:
        tuner.search(
            **_trial_fit_kwargs(x_fit, y_fit, x_val, y_val, epochs, batch_size, callbacks, verbose)
        )
    except RuntimeError as error:
        # A failed trial ends the search (max_consecutive_failed_trials=1): keras-tuner raises
        # "Number of consecutive failures exceeded the limit" with the trial's traceback as
        # text at its end. The trial's own error, with that traceback, says first what is
        # wrong (e.g. a `batch_size` refused).
        if tuner.trial_error is None or "consecutive failures" not in str(error):
            raise
        raise tuner.trial_error from None
    if tuner.is_worker:  # the chief holds the grid; a worker knows the trials it ran
        own = tuner.completed_trials.values()
        scores = {float(hp.get(hypermodel.param_name)): s for hp, s in own}
        return None, dict(sorted(scores.items()))
    scores = {}
    for trial in tuner.oracle.trials.values():
        if trial.status == "COMPLETED":
            value = trial.hyperparameters.get(hypermodel.param_name)
            score = math.nan if trial.score is None else float(trial.score)
            scores[float(value)] = score if math.isfinite(score) else math.nan  # diverged
    if len(scores) < len(hypermodel.grid):
        raise RuntimeError(
            f"The search finished {len(scores)} of {len(hypermodel.grid)} trials; "
            f"see the trial logs in {tuner.project_dir}."
        )
    best = best_value({v: scores[v] for v in hypermodel.grid}, objective.direction)
    return best, dict(sorted(scores.items()))


def _trial_fit_kwargs(x_fit, y_fit, x_val, y_val, epochs, batch_size, callbacks, verbose):
    return dict(
        x=x_fit,
        y=y_fit,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=replica_batch_size(batch_size, len(y_fit)),
        validation_batch_size=replica_batch_size(batch_size, len(y_val)),
        callbacks=list(callbacks or []),
        verbose=verbose,
    )


def search_trial(
    hypermodel, value, x, y, validation_data, optimize_for="acc", epochs=10, batch_size=64,
    seed=0, callbacks=None, verbose=0,
):  # fmt: skip
    """One trial of ``search``'s grid on its own: the same training and score.

    Trains ``hypermodel`` with its parameter at ``value`` on ``(x, y)`` from
    ``seed`` and scores the final epoch on ``validation_data``, exactly as
    ``search(..., validation_data=validation_data)`` scores that value (the
    unit of a search that ``compare`` spreads over workers).

    Returns:
        The final epoch's ``val_accuracy`` or ``val_ece``; NaN when the trial
        diverged.
    """
    if hypermodel.grid is None:
        raise ValueError(
            f"Invalid value for argument `hypermodel`: {hypermodel.loss!r} has no grid to search."
        )
    hp = hypermodel.hyperparameters(value)
    x_val, y_val = validation_data
    kwargs = _trial_fit_kwargs(x, y, x_val, y_val, epochs, batch_size, callbacks, verbose)
    return train_and_score(hypermodel, hp, seed, get_objective(optimize_for).name, **kwargs)
