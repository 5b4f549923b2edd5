"""One process of the distributed search of ``test_distributed.py``: the chief or a worker.

``python _distributed_worker.py DIRECTORY OUTPUT_JSON WORKERS`` runs ``search`` for label
relaxation over the paper's alpha grid (1 epoch of a linear model on 600 digits); keras-tuner
reads the process's role from ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT``. It writes ``{"tuner_id", "best", "scores", "trained"}`` to
OUTPUT_JSON: ``search``'s result, and the alpha of every model this process trained.

A worker's first trial waits (at most ``HANDSHAKE_TIMEOUT`` seconds) until each of the WORKERS
workers has started a trial, so every worker takes part although they start at different times.
"""

import json
import os
import sys
import time

HANDSHAKE_TIMEOUT = 60.0


def main(directory, output, workers):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from keras_label_relaxation import datasets
    from keras_label_relaxation.tuning import LossHyperModel, search

    if keras.backend.backend() == "tensorflow":  # three processes share two cores
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    trained = []

    class Handshake(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            trained.append(self.model.loss.get_config()["alpha"])
            if len(trained) > 1:
                return
            open(os.path.join(directory, f"started-{tuner_id}"), "w").close()
            deadline = time.monotonic() + HANDSHAKE_TIMEOUT
            while time.monotonic() < deadline:
                started = [f for f in os.listdir(directory) if f.startswith("started-")]
                if len(started) >= workers:
                    return
                time.sleep(0.05)

    data = datasets.load("digits")
    x, y = data.x_train[:600], data.y_train[:600]
    hypermodel = LossHyperModel(
        lambda: keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(),
                                  keras.layers.Dense(data.num_classes)]),
        "label_relaxation", sparse=True, from_logits=True,
    )  # fmt: skip
    best, scores = search(
        hypermodel, x, y, "ece", epochs=1, batch_size=64, directory=directory,
        project_name="grid", callbacks=[Handshake()],
    )  # fmt: skip
    with open(output, "w") as f:
        json.dump(
            {"tuner_id": tuner_id, "best": best, "scores": sorted(scores.items()),
             "trained": trained},
            f,
        )  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
