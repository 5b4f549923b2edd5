"""Multi-worker training with label relaxation: a custom loop under MultiWorkerMirroredStrategy.

Keras 3's ``model.fit`` does not run under ``tf.distribute.MultiWorkerMirroredStrategy``
(keras-team/keras#20585: its first-batch build all-reduces a per-replica value), so this
script trains with a short custom loop: ``strategy.run`` per step, the per-sample
``SparseLabelRelaxation`` losses averaged over the *global* batch, Keras' optimizer (which
all-reduces the gradients), and the ``ExpectedCalibrationError`` state summed over all
workers. Every worker ends with the same weights.

Start one process per worker, each with its own ``TF_CONFIG`` (same cluster, own index)::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' python examples/multiworker.py
    TF_CONFIG='{... "task": {"type": "worker", "index": 1}}' python examples/multiworker.py

Without ``TF_CONFIG`` it runs as a single worker. ``--out DIR`` writes this worker's final
weights and metrics to ``DIR/worker<index>.npz``.
"""

import argparse
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_label_relaxation as klr  # noqa: E402


def distributed_dataset(strategy, x, y, global_batch, shuffle_seed=None):
    """``(x, y)`` in global batches, each worker reading its share of every batch."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    # drop_remainder: every step splits evenly over the replicas of all workers.
    dataset = dataset.batch(global_batch, drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def train(strategy, data, alpha=0.1, epochs=3, global_batch=64, learning_rate=0.05, seed=0):
    """Train the paper's dense network with label relaxation; return (model, history)."""
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = klr.models.simple_dense(data.input_shape, data.num_classes)
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9)
        optimizer.build(model.trainable_variables)
        # reduction=None: per-sample losses, averaged over the global batch below.
        loss_fn = klr.SparseLabelRelaxation(alpha=alpha, from_logits=True, reduction=None)
        ece = klr.ExpectedCalibrationError(from_logits=True)

    @tf.function
    def train_step(x, y):
        def step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                per_sample = loss_fn(y, logits)
                loss = tf.nn.compute_average_loss(per_sample, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss

        per_replica = strategy.run(step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    @tf.function
    def eval_step(x, y):
        strategy.run(lambda x, y: ece.update_state(y, model(x, training=False)), args=(x, y))

    history = {"loss": [], "test_ece": []}
    train_data = distributed_dataset(
        strategy, data.x_train, data.y_train, global_batch, shuffle_seed=seed
    )
    test_data = distributed_dataset(strategy, data.x_test, data.y_test, global_batch)
    for _ in range(epochs):
        losses = [float(train_step(x, y)) for x, y in train_data]
        history["loss"].append(float(np.mean(losses)))
        ece.reset_state()
        for x, y in test_data:
            eval_step(x, y)
        history["test_ece"].append(float(ece.result()))
    return model, history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--out", help="write worker<index>.npz (weights, metrics) here")
    args = parser.parse_args(argv)

    # Create the strategy first: it starts the collective runtime for the whole cluster.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {"index": 0})
    x, y = klr.datasets.load_digits()
    # A fixed split of the 1,797 digits: every worker builds the same arrays.
    data = klr.datasets.from_arrays("digits", x[:1536], y[:1536], x[1536:], y[1536:])
    model, history = train(strategy, data, args.alpha, args.epochs, args.global_batch)
    print(f"worker {task['index']}: loss {history['loss']}, test ECE {history['test_ece']}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        np.savez(
            os.path.join(args.out, f"worker{task['index']}.npz"),
            *model.get_weights(),
            loss=np.array(history["loss"]),
            test_ece=np.array(history["test_ece"]),
        )


if __name__ == "__main__":
    main()
