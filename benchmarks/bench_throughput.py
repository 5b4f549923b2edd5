"""Training-step throughput of resnet56_v2: label relaxation vs cross-entropy, float32 vs mixed.

One compiled training step (``model.train_on_batch``) of the paper's CIFAR network on a
synthetic CIFAR-shaped batch (32x32x3, 10 classes; throughput does not depend on the
pixel values), for every (loss, dtype policy) pair. The pairs are interleaved
(round-robin over ``--repeats`` rounds of ``--steps`` steps each) so that drift of the
machine hits all alike; the median step time per pair is reported with the ratios
LR / CE (target <= 1.01) and float32 / mixed (target >= 1.5 on a GPU).

Runs on the backend ``KERAS_BACKEND`` names (TensorFlow, JAX or torch). On a GPU machine
use ``--policies float32,mixed_float16``; on CPUs without native float16 math, mixed
float16 is emulated and slow, and ``mixed_bfloat16`` is the CPU's half type.

Usage: python benchmarks/bench_throughput.py [--batch-size 64] [--steps 10] [--repeats 3]
           [--policies float32,mixed_bfloat16] [--json out.json]
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_label_relaxation as klr  # noqa: E402

LOSSES = {
    "CE": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    "LR": lambda: klr.SparseLabelRelaxation(alpha=0.1, from_logits=True),
}


def _device():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    elif backend == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def _versions():
    versions = {"keras": keras.__version__, "backend": keras.backend.backend()}
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[versions["backend"]]
    versions[module] = __import__(module).__version__
    return versions


def _build(loss_name, policy, batch_size, seed=0):
    """A compiled resnet56_v2 under ``policy`` and one synthetic batch for it."""
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(seed)
        model = klr.models.resnet56_v2((32, 32, 3), 10)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=LOSSES[loss_name](),
            jit_compile=False,
        )
    finally:
        keras.config.set_dtype_policy("float32")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch_size)
    return model, x, y


def _time_steps(model, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)  # returns a Python float: waits for the step
    elapsed = time.perf_counter() - start
    if not np.isfinite(loss):
        raise RuntimeError(f"non-finite loss {loss}")
    return elapsed / steps


def run(batch_size, steps, repeats, policies, warmup):
    pairs = [(loss, policy) for policy in policies for loss in LOSSES]
    built = {pair: _build(*pair, batch_size) for pair in pairs}
    for pair in pairs:  # compile and settle
        _time_steps(*built[pair], warmup)
    times = {pair: [] for pair in pairs}
    for _ in range(repeats):
        for pair in pairs:
            times[pair].append(_time_steps(*built[pair], steps))
    step = {pair: statistics.median(values) for pair, values in times.items()}
    rows = [
        {
            "loss": loss,
            "policy": policy,
            "step_ms": 1000 * step[(loss, policy)],
            "images_per_s": batch_size / step[(loss, policy)],
            "spread_ms": 1000 * (max(times[(loss, policy)]) - min(times[(loss, policy)])),
        }
        for loss, policy in pairs
    ]
    ratios = {f"LR/CE {p}": step[("LR", p)] / step[("CE", p)] for p in policies}
    for p in policies[1:]:
        for loss in LOSSES:
            ratios[f"speed-up {p} vs {policies[0]} ({loss})"] = (
                step[(loss, policies[0])] / step[(loss, p)]
            )
    return {
        "device": _device(),
        "versions": _versions(),
        "batch_size": batch_size,
        "steps": steps,
        "repeats": repeats,
        "rows": rows,
        "ratios": ratios,
    }


def to_markdown(result):
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [
        f"Device: {result['device']}; {versions}"
        f"; batch {result['batch_size']}, median of {result['repeats']} x {result['steps']} steps.",
        "",
        "| loss | policy | step (ms) | images/s | spread (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['loss']} | {row['policy']} | {row['step_ms']:.1f} | "
            f"{row['images_per_s']:.1f} | {row['spread_ms']:.1f} |"
        )
    lines.append("")
    lines.extend(f"- {name}: {value:.3f}" for name, value in result["ratios"].items())
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--policies", default="float32,mixed_bfloat16")
    parser.add_argument("--json", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    result = run(args.batch_size, args.steps, args.repeats, policies, args.warmup)
    print(to_markdown(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
