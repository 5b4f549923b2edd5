"""Images per second the CIFAR input pipeline delivers vs what a training step consumes.

The pipeline is ``datasets.make_dataset`` as the paper's CIFAR runs use it (shuffle,
batches of 64, random flip and 0.1 shifts, prefetch) over CIFAR-shaped synthetic
images (throughput does not depend on pixel values). The demand is the training
step of each CIFAR model (``model.fit``'s compiled step with ``SparseLabelRelaxation``)
on the same batches, measured on cached in-memory tensors. The pipeline is never the
bottleneck when its rate exceeds every model's.

Usage: python benchmarks/bench_pipeline.py [--images 20000] [--steps 20]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pipeline_rate(x, y, batches):
    from keras_label_relaxation import datasets

    dataset = datasets.make_dataset(x, y, batch_size=64, training=True, augment=True, seed=0)
    iterator = iter(dataset.repeat())
    for _ in range(5):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * 64 / (time.perf_counter() - start)


def training_rate(name, x, y, steps):
    import keras

    import keras_label_relaxation as klr

    model = klr.models.get_model(name, x.shape[1:], 10)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        loss=klr.SparseLabelRelaxation(0.1, from_logits=True),
    )
    xb, yb = x[:64], y[:64]
    for _ in range(3):
        model.train_on_batch(xb, yb)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(xb, yb)
    return steps * 64 / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (args.images, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.images)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores")
    supply = pipeline_rate(x, y, args.batches)
    print("| stage | images/s | pipeline / demand |")
    print("| --- | --- | --- |")
    print(f"| input pipeline (shuffle, flip, shift, batch 64, prefetch) | {supply:,.0f} | |")
    for name in ("resnet56_v2", "vgg16", "densenet_bc_100_12"):
        demand = training_rate(name, x, y, args.steps)
        print(f"| training step: {name} | {demand:,.0f} | {supply / demand:,.1f}x |", flush=True)


if __name__ == "__main__":
    main()
