"""Loss + gradient time and peak memory: SparseLabelRelaxation vs SparseCategoricalCrossentropy.

Both losses run compiled (``tf.function``, with and without XLA) on the same logits
and labels; the two are interleaved (A B A B ...) so that drift of the machine hits
both alike, and the ratio is taken within one run. Target: ratio <= 1.05 in time
and in memory.

Memory is the peak resident set size a step adds on top of what the process
holds before it (``VmHWM`` after resetting it through ``/proc/self/clear_refs``),
measured in a fresh subprocess per (loss, shape, mode) with glibc's mmap
threshold fixed at 64 KiB so that every large tensor is mapped and unmapped
with its step. Linux only.

Usage: python benchmarks/bench_losses.py [--repeats 30] [--shapes 4096x1000,512x32000]
"""

import argparse
import json
import os
import statistics
import time

import _peak

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LOSSES = ("sparse_label_relaxation", "sparse_categorical_crossentropy")
MODES = ("graph", "xla")


def _make_step(loss_name, jit):
    import keras
    import tensorflow as tf

    import keras_label_relaxation as klr

    if loss_name == "sparse_label_relaxation":
        loss = klr.SparseLabelRelaxation(alpha=0.1, from_logits=True)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit)
    def step(logits, labels):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(labels, logits)
        return value, tape.gradient(value, logits)

    return step


def _inputs(batch, classes):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    logits = tf.constant(3.0 * rng.standard_normal((batch, classes)), tf.float32)
    labels = tf.constant(rng.integers(0, classes, batch), tf.int32)
    return logits, labels


def _run(step, logits, labels):
    value, grad = step(logits, labels)
    # Materialise both outputs so that the step really finished.
    value.numpy()
    grad.numpy()


def time_pair(batch, classes, mode, repeats):
    """Median seconds per step of each loss, interleaved."""
    logits, labels = _inputs(batch, classes)
    steps = {name: _make_step(name, mode == "xla") for name in LOSSES}
    for step in steps.values():
        for _ in range(3):
            _run(step, logits, labels)
    times = {name: [] for name in LOSSES}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            _run(step, logits, labels)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_memory_child(loss_name, batch, classes, mode):
    """(In a subprocess.) Peak RSS in MiB that five steps add to the process."""
    logits, labels = _inputs(batch, classes)
    step = _make_step(loss_name, mode == "xla")
    for _ in range(3):
        _run(step, logits, labels)

    def work():
        for _ in range(5):
            _run(step, logits, labels)

    return _peak.peak_mib(work)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--shapes", default="4096x1000,512x32000")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.child:
        name, batch, classes, mode = args.child
        print(peak_memory_child(name, int(batch), int(classes), mode))
        return

    import keras
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores")
    header = (
        "| shape | mode | LR ms | CE ms | time ratio | LR peak MiB | CE peak MiB | memory ratio |"
    )
    print(header)
    print("|" + " --- |" * 8)
    results = []
    for shape in args.shapes.split(","):
        batch, classes = (int(v) for v in shape.split("x"))
        for mode in MODES:
            t = time_pair(batch, classes, mode, args.repeats)
            m = {name: _peak.measure(__file__, (name, batch, classes, mode)) for name in LOSSES}
            lr, ce = LOSSES
            row = {
                "shape": shape,
                "mode": mode,
                "time_ms": {k: 1e3 * v for k, v in t.items()},
                "peak_mib": m,
                "time_ratio": t[lr] / t[ce],
                "memory_ratio": m[lr] / m[ce],
            }
            results.append(row)
            print(
                f"| {shape} | {mode} | {1e3 * t[lr]:.2f} | {1e3 * t[ce]:.2f} | "
                f"{row['time_ratio']:.3f} | {m[lr]:.1f} | {m[ce]:.1f} | "
                f"{row['memory_ratio']:.3f} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
