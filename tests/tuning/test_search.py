"""LossHyperModel under keras-tuner, and the resumable final-epoch grid search."""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_label_relaxation import datasets, models
from keras_label_relaxation.tuning import PAPER_GRIDS, LossHyperModel, search


@pytest.fixture(scope="module")
def digits():
    data = datasets.standardize(datasets.resample(datasets.load("digits"), 0))
    return data


def _hypermodel(data, grid=(0.05, 0.2), builds=None):
    def build():
        if builds is not None:
            builds.append(1)
            if len(builds) == getattr(builds, "interrupt_at", -1):
                raise KeyboardInterrupt("simulated interruption")
        return models.simple_dense(data.input_shape, data.num_classes)

    return LossHyperModel(
        build, "label_relaxation", grid=grid, sparse=True, from_logits=True,
        optimizer=lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    )  # fmt: skip


def test_paper_grids():
    assert PAPER_GRIDS["label_relaxation"] == (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4)
    assert PAPER_GRIDS["confidence_penalty"] == (0.1, 0.3, 0.5, 1.0, 2.0, 4.0, 8.0)
    assert PAPER_GRIDS["focal"] == (0.1, 0.2, 0.5, 1.0, 2.0, 3.5, 5.0)
    hypermodel = LossHyperModel(lambda: None, "ls")
    assert hypermodel.grid == PAPER_GRIDS["label_smoothing"]


def test_hypermodel_under_keras_tuner_grid_search_and_retrain(digits, tmp_path):
    hypermodel = _hypermodel(digits)
    tuner = keras_tuner.GridSearch(
        hypermodel, objective=keras_tuner.Objective("val_ece", "min"),
        directory=str(tmp_path), project_name="grid",
    )  # fmt: skip
    (x_fit, y_fit), (x_val, y_val) = datasets.split_holdout(
        digits.x_train, digits.y_train, 1 / 6, seed=0
    )
    tuner.search(x_fit, y_fit, validation_data=(x_val, y_val), epochs=2, verbose=0)
    trials = tuner.oracle.get_best_trials(num_trials=10)
    assert sorted(t.hyperparameters.get("alpha") for t in trials) == [0.05, 0.2]
    best = tuner.get_best_hyperparameters()[0]
    assert best.get("alpha") == min(trials, key=lambda t: t.score).hyperparameters.get("alpha")
    model = hypermodel.build(best)  # retrain the best value on all training data
    history = model.fit(digits.x_train, digits.y_train, epochs=2, verbose=0)
    assert model.loss.get_config()["alpha"] == best.get("alpha")
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_search_scores_final_epoch_and_picks_the_best(digits, tmp_path):
    best, scores = search(_hypermodel(digits), digits.x_train, digits.y_train, "ece", epochs=2,
                          directory=str(tmp_path))  # fmt: skip
    assert set(scores) == {0.05, 0.2} and best == min(scores, key=scores.get)
    # The final epoch's val_ece of the same training, run by hand.
    (x_fit, y_fit), (x_val, y_val) = datasets.split_holdout(
        digits.x_train, digits.y_train, 1 / 6, seed=0
    )
    keras.utils.set_random_seed(0)
    hp = keras_tuner.HyperParameters()
    hp.Choice("alpha", [0.05, 0.2])
    hp.values["alpha"] = 0.2
    model = _hypermodel(digits).build(hp)
    history = model.fit(
        x_fit, y_fit, validation_data=(x_val, y_val), epochs=2, batch_size=64, verbose=0
    )
    assert scores[0.2] == pytest.approx(history.history["val_ece"][-1], abs=1e-6)


@pytest.mark.parametrize("interrupt_at", [3, 4], ids=["second_trial", "third_trial"])
def test_search_resumes_after_an_interrupted_trial(digits, tmp_path, interrupt_at):
    grid = (0.05, 0.1, 0.2)
    builds = type("Builds", (list,), {})()
    builds.interrupt_at = interrupt_at
    with pytest.raises(KeyboardInterrupt):
        search(_hypermodel(digits, grid, builds), digits.x_train, digits.y_train, "ece",
               epochs=2, directory=str(tmp_path))  # fmt: skip
    resumed_builds = []
    best, scores = search(_hypermodel(digits, grid, resumed_builds), digits.x_train,
                          digits.y_train, "ece", epochs=2, directory=str(tmp_path))  # fmt: skip
    # keras-tuner's first build (search-space discovery) plus the finished trials are not redone.
    assert len(resumed_builds) == len(grid) - (interrupt_at - 2)
    _, fresh = search(_hypermodel(digits, grid), digits.x_train, digits.y_train, "ece", epochs=2,
                      directory=str(tmp_path / "fresh"))  # fmt: skip
    assert scores == pytest.approx(fresh, abs=1e-6)
    assert best == min(fresh, key=fresh.get)


def test_bad_grids_and_names():
    with pytest.raises(ValueError, match="empty grid"):
        LossHyperModel(lambda: None, "lr", grid=[])
    with pytest.raises(ValueError, match="`alpha`"):
        LossHyperModel(lambda: None, "lr", grid=[0.1, 1.5])
    with pytest.raises(ValueError, match="no parameter"):
        LossHyperModel(lambda: None, "ce", grid=[0.1])
    with pytest.raises(ValueError, match="Unknown loss name"):
        LossHyperModel(lambda: None, "hinge")
    with pytest.raises(ValueError, match="`optimize_for`"):
        search(LossHyperModel(lambda: None, "lr"), np.zeros((12, 2)), np.zeros(12), "loss")
    hypermodel = LossHyperModel(lambda: None, "lr", grid=[0.05, 0.1])
    for value in (0.2, None):
        with pytest.raises(ValueError, match=rf"`value`: {value} is not in the grid"):
            hypermodel.hyperparameters(value)
    assert LossHyperModel(lambda: None, "ce").hyperparameters().values == {}


class _PoisonWeights(keras.callbacks.Callback):
    """Makes a trial diverge: NaN output weights, so every loss after is NaN."""

    def on_train_begin(self, logs=None):
        kernel = self.model.layers[-1].kernel
        kernel.assign(np.full(kernel.shape, np.nan, "float32"))


class _DivergingHyperModel(LossHyperModel):
    """Trials whose alpha is in ``diverge`` diverge; their accuracy stays finite (argmax of NaN)."""

    def __init__(self, base, diverge):
        super().__init__(
            base.build_model, base.loss, grid=base.grid, optimizer=base.optimizer,
            sparse=True, from_logits=True,
        )  # fmt: skip
        self.diverge = set(diverge)

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        if hp.get(self.param_name) in self.diverge:
            callbacks = [*callbacks, _PoisonWeights()]
        return super().fit(hp, model, *args, callbacks=callbacks, **kwargs)


@pytest.mark.parametrize("optimize_for", ["acc", "ece"])
def test_a_diverged_trial_is_recorded_as_nan_and_never_wins(digits, tmp_path, optimize_for):
    grid = (0.05, 0.1, 0.2)
    hypermodel = _DivergingHyperModel(_hypermodel(digits, grid), diverge={0.1})
    best, scores = search(hypermodel, digits.x_train, digits.y_train, optimize_for, epochs=2,
                          directory=str(tmp_path))  # fmt: skip
    assert set(scores) == set(grid) and np.isnan(scores[0.1])
    finite = {v: s for v, s in scores.items() if v != 0.1}
    assert all(np.isfinite(s) for s in finite.values())
    assert best == (max if optimize_for == "acc" else min)(finite, key=finite.get)


def test_a_search_whose_trials_all_diverged_raises_naming_them(digits, tmp_path):
    grid = (0.05, 0.2)
    hypermodel = _DivergingHyperModel(_hypermodel(digits, grid), diverge=set(grid))
    with pytest.raises(ValueError, match=r"diverged.*0\.05: nan.*0\.2: nan"):
        search(hypermodel, digits.x_train, digits.y_train, "acc", epochs=1,
               directory=str(tmp_path))  # fmt: skip


def test_best_value_ignores_non_finite_scores():
    from keras_label_relaxation.tuning import best_value

    scores = {0.1: np.nan, 0.2: 0.5, 0.3: np.inf, 0.4: 0.7, 0.5: -np.inf}
    assert best_value(scores, "max") == 0.4 and best_value(scores, "min") == 0.2
    assert best_value({0.1: 0.5, 0.2: 0.5}, "min") == 0.1  # ties: the first value
    with pytest.raises(ValueError, match="diverged"):
        best_value({0.1: np.nan, 0.2: np.inf}, "max")


class _EpochCounter(keras.callbacks.Callback):
    """Counts the epochs it has seen; records its count at every start of training."""

    counts_at_start = []  # a class attribute: shared by the copies, unlike their counters

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_train_begin(self, logs=None):
        type(self).counts_at_start.append(self.epochs)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def test_every_trial_gets_its_own_copy_of_the_callbacks(digits, tmp_path):
    counter = _EpochCounter()
    _EpochCounter.counts_at_start.clear()
    search(_hypermodel(digits, (0.05, 0.1, 0.2)), digits.x_train, digits.y_train, "ece",
           epochs=2, directory=str(tmp_path), callbacks=[counter])  # fmt: skip
    assert _EpochCounter.counts_at_start == [0, 0, 0]  # shared: [0, 2, 4]
    assert counter.epochs == 0  # the user's object is left as it was given

    class Uncopyable(keras.callbacks.Callback):
        def __deepcopy__(self, memo):
            raise TypeError("holds a lock")

    with pytest.raises(ValueError, match="callbacks=.*Uncopyable.*deep-copy|deep-copyable"):
        search(_hypermodel(digits, (0.05,)), digits.x_train, digits.y_train, "ece", epochs=1,
               directory=str(tmp_path / "u"), callbacks=[Uncopyable()])  # fmt: skip
