"""One process of the data-parallel tests: train CE and LR as the runner does, save the results.

Usage: ``python _data_parallel_worker.py OUT.npz [PROCESSES PROCESS_ID PORT]``. The JAX backend
and the host device count come from the environment (``KERAS_BACKEND=jax``, ``XLA_FLAGS``).
Each loss trains through ``LossHyperModel.build`` and ``distribute.fit`` (the runner's path)
under ``distribute.data_parallel``: 3 epochs, global batch 16 of 100 examples (6 full batches,
4 dropped per epoch), with a 37-example validation set; then ``distribute.predict`` on 29 test
examples; then ``search`` of alpha in {0.05, 0.2} by the final val_ece. Saved: final weights,
History, test logits, search scores, device and process counts, on one device Keras' ``evaluate``
of the validation set, and on two devices in one process the errors of ``fit`` with global
batches of 15 (odd) and 102 (more than the data).
"""

import sys
import tempfile

import keras
import keras_tuner
import numpy as np

from keras_label_relaxation import distribute
from keras_label_relaxation.tuning import LossHyperModel, search


def build_model():
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(
                16, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)
            ),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(4),
        ]
    )


def main(out, processes=None, process_id=None, port=None):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((166, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0).astype("int64")
    x_val, y_val, x_test = x[100:137], y[100:137], x[137:]
    x, y = x[:100], y[:100]
    address = None if port is None else f"127.0.0.1:{port}"
    saved = {}
    with distribute.data_parallel(address, processes, process_id):
        import jax

        saved["devices"], saved["processes"] = jax.device_count(), jax.process_count()
        for loss, grid in (("cross_entropy", None), ("label_relaxation", [0.1])):
            keras.utils.set_random_seed(0)
            hypermodel = LossHyperModel(
                build_model, loss, grid=grid, optimizer=lambda: keras.optimizers.SGD(0.1),
                sparse=True, from_logits=True,
            )  # fmt: skip
            model = hypermodel.build(keras_tuner.HyperParameters())
            history = hypermodel.fit(
                None, model, x, y, epochs=3, batch_size=16, validation_data=(x_val, y_val),
                verbose=0,
            )  # fmt: skip
            for i, weight in enumerate(distribute._local_values(model.weights)):
                saved[f"{loss}/weight{i}"] = np.asarray(weight)
            for key, values in history.history.items():
                saved[f"{loss}/history/{key}"] = np.asarray(values)
            saved[f"{loss}/logits"] = distribute.predict(model, x_test)
            if jax.device_count() == 1:  # Keras' own evaluate, for the validation scores
                scores = model.evaluate(x_val, y_val, batch_size=16, verbose=0, return_dict=True)
                for key, value in scores.items():
                    saved[f"{loss}/evaluate/{key}"] = np.asarray(value)
        # The runner's search (keras-tuner, scored on val_ece), each process in its own directory.
        hypermodel = LossHyperModel(
            build_model, "lr", grid=[0.05, 0.2], optimizer=lambda: keras.optimizers.SGD(0.1),
            sparse=True, from_logits=True,
        )  # fmt: skip
        best, scores = search(
            hypermodel, x, y, optimize_for="ece", epochs=2, batch_size=16,
            directory=tempfile.mkdtemp(), validation_data=(x_val, y_val),
        )  # fmt: skip
        saved["search/best"] = np.asarray(best)
        saved["search/scores"] = np.asarray([scores[0.05], scores[0.2]])
        if jax.process_count() == 1 and jax.device_count() == 2:  # the refusals
            for batch_size in (15, 102):
                try:
                    distribute.fit(model, x, y, batch_size=batch_size, verbose=0)
                except ValueError as error:
                    saved[f"error/{batch_size}"] = np.asarray(str(error))
    np.savez(out, **saved)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
