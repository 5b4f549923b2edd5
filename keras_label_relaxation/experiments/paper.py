"""The paper's presets (data sets, models, seeds, schedules) and its published numbers."""

import json
import os

import keras

with open(os.path.join(os.path.dirname(__file__), "paper_results.json")) as _f:
    PAPER = json.load(_f)

#: ``klr reproduce`` presets: the (data set, model) pairs and seeds of each table.
PRESETS = {
    "table1": {
        "runs": [("mnist", "simple_dense"), ("fashion_mnist", "simple_dense")],
        "seeds": 10,
        "paper_model": {"simple_dense": "simple_dense_2x1024"},
    },
    "table2": {
        "runs": [
            (dataset, model)
            for model in ("vgg16", "resnet56_v2", "densenet_bc_100_12")
            for dataset in ("cifar10", "cifar100")
        ],
        "seeds": 5,
        "paper_model": {},
    },
}


def paper_sgd(learning_rate=0.05):
    """SGD with Nesterov momentum 0.9: the paper's optimiser (learning rate 0.05 for MNIST).

    ``schedule`` gives the initial rate of each model and data set.

    Example:
    >>> optimizer = paper_sgd(0.1)
    >>> float(optimizer.learning_rate), optimizer.momentum, optimizer.nesterov
    (0.1, 0.9, True)
    """
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9, nesterov=True)


def schedule(model, dataset):
    """``(epochs, initial_lr, multiplier, step_epochs)`` of the paper for ``model/dataset``."""
    key = f"{'simple_dense_2x1024' if model == 'simple_dense' else model}/{dataset}"
    training = PAPER["training"][key]
    legacy_key = f"{model}/{dataset}"
    return (
        training["epochs"],
        training["initial_lr"],
        PAPER["lr_step_multiplier"][model],
        tuple(PAPER["lr_steps_epochs"][legacy_key]),
    )


def paper_rows(table, dataset, model, optimize_for):
    """``{loss label: row}`` of the paper's table for one data set, model and scheme."""
    model = PRESETS[table]["paper_model"].get(model, model)
    return {
        r["loss"]: r
        for r in PAPER[table]
        if r["dataset"] == dataset and r["model"] == model and r["optimized_for"] == optimize_for
    }


class PaperLearningRate(keras.callbacks.Callback):
    """The authors' learning rate: step drops per epoch and a per-step inverse-time decay.

    ``lr = initial * multiplier ** k / (1 + decay * step)`` where ``k`` counts
    the drop epochs ``s`` with ``epoch > s`` (the legacy code's rule) and
    ``step`` is the optimizer's iteration count (tf.keras 2's ``SGD(decay=1e-5)``,
    which Keras 3 no longer has).

    Example:
    >>> callback = PaperLearningRate(0.1, 0.1, (50, 100), decay=0.0)
    >>> [callback.rate(epoch, 0) for epoch in (0, 50, 51, 101)]
    [0.1, 0.1, 0.010000000000000002, 0.0010000000000000002]
    """

    def __init__(self, initial, multiplier, step_epochs, decay=1e-5):
        super().__init__()
        self.initial, self.multiplier = float(initial), float(multiplier)
        self.step_epochs, self.decay = tuple(step_epochs), float(decay)
        self._epoch = 0

    def rate(self, epoch, step):
        drops = sum(epoch > s for s in self.step_epochs)
        return self.initial * self.multiplier**drops / (1.0 + self.decay * step)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        optimizer.learning_rate.assign(self.rate(self._epoch, step))
