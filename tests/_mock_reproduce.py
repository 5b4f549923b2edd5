"""``klr reproduce`` on tensorflow-datasets' mock data: how the README test runs its recipe.

No CIFAR here (``tfds.load`` cannot download), so ``python tests/_mock_reproduce.py ARGS``
runs ``klr reproduce ARGS`` with the table's preset shrunk to its first data set with the
``simple_dense`` model, one seed, one epoch and the first value of every grid, on 40 mock
examples per split (``tfds.testing.mock_data``). Everything else, keras-tuner's distributed
mode from the environment included, is the command as a user runs it.
"""

import sys
import tempfile

import tensorflow_datasets as tfds

from keras_label_relaxation.cli import main
from keras_label_relaxation.experiments import paper
from keras_label_relaxation.tuning import hypermodel


def run(argv):
    table = argv[0]
    dataset = paper.PRESETS[table]["runs"][0][0]
    paper.PRESETS[table]["runs"] = [(dataset, "simple_dense")]
    paper.PRESETS[table]["seeds"] = 1
    paper.schedule = lambda model, dataset: (1, 0.05, 0.1, (1,))
    for name, grid in list(hypermodel.PAPER_GRIDS.items()):
        hypermodel.PAPER_GRIDS[name] = grid[:1]
    with tfds.testing.mock_data(num_examples=40):
        return main(["reproduce", *argv, "--data-dir", tempfile.mkdtemp(prefix="klr-mock-tfds-")])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
