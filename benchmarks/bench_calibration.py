"""ECE update throughput and temperature fitting, side by side with torchmetrics and netcal.

1. ECE over 1,000,000 x 100 float32 probabilities (15 bins), fed in batches of
   100,000 (streaming, as in an evaluation loop): our ``ExpectedCalibrationError``
   (eager ``update_state`` on NumPy arrays under the TensorFlow, JAX and torch
   backends, inside a ``tf.function`` on tensors, and ``jax.jit`` of
   ``stateless_update_state`` on JAX arrays), torchmetrics'
   ``MulticlassCalibrationError`` (``update`` per batch, ``compute`` at the
   end), and netcal's ``ECE.measure`` (one call on the whole array; netcal
   does not stream); then every other estimator
   (``CalibrationError`` variants, ``KSCalibrationError``,
   ``SmoothCalibrationError``) fed the same way. Throughput in samples/s and
   the peak memory the whole run adds.
2. Temperature fitting on 100,000 x 100 logits: ``TemperatureScaling.fit``
   (``"nll"`` and the paper's ``"grid"``) vs netcal's ``TemperatureScaling``
   (maximum likelihood, fitted on the probabilities).

Targets: eager ECE at least as fast as the fastest peer, in a ``tf.function``
>= 1.5x the fastest peer, O(bins) memory; every other estimator within 2x of
the plain ECE's time per sample; fit < 1 s.
Usage: python benchmarks/bench_calibration.py [--samples 1000000] [--classes 100]
Needs the ``bench`` extra (torchmetrics, netcal; torch 2.13.0 CPU).
"""

import argparse
import os
import subprocess
import sys
import time

import _peak

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH = 100_000
ECE_IMPLEMENTATIONS = ("ours_eager", "ours_tf_function", "ours_xla", "torchmetrics", "netcal")
#: The estimators beyond the 15-bin ECE, each fed like ``ours_eager`` (NumPy batches, eagerly).
ESTIMATORS = {
    "ece_histogram": lambda klr: klr.CalibrationError(),
    "rms": lambda klr: klr.CalibrationError(norm="l2"),
    "mce": lambda klr: klr.CalibrationError(norm="max"),
    "ace": lambda klr: klr.CalibrationError(binning="equal_mass"),
    "debiased_ece": lambda klr: klr.CalibrationError(debiased=True),
    "classwise_ece": lambda klr: klr.CalibrationError(mode="classwise", num_classes=100),
    "ks": lambda klr: klr.KSCalibrationError(),
    "smece": lambda klr: klr.SmoothCalibrationError(),
}


def _probabilities(n, k, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal((n, k))).astype(np.float32)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    # Labels drawn from 1.5 x the logits: an underconfident model, a clear ECE.
    sharp = np.exp(1.5 * (logits - logits.max(-1, keepdims=True)))
    cumulative = np.cumsum(sharp / sharp.sum(-1, keepdims=True), axis=-1)
    labels = (rng.uniform(size=(n, 1)) > cumulative).sum(-1).clip(0, k - 1)
    return logits, probs, labels.astype(np.int64)


def _ece_runner(name, probs, labels):
    """A function that computes the ECE of all samples and returns it as a float."""
    n = len(labels)
    if name.startswith("ours") or name in ESTIMATORS:
        import keras_label_relaxation as klr

        if name in ESTIMATORS:
            metric = ESTIMATORS[name](klr)
        else:
            metric = klr.ExpectedCalibrationError(num_bins=15)
        update = metric.update_state
        if name in ("ours_tf_function", "ours_xla"):
            import tensorflow as tf

            update = tf.function(metric.update_state, jit_compile=name == "ours_xla")
            batches = [
                (tf.constant(labels[i : i + BATCH]), tf.constant(probs[i : i + BATCH]))
                for i in range(0, n, BATCH)
            ]
        else:  # NumPy arrays, as people evaluate saved predictions
            batches = [(labels[i : i + BATCH], probs[i : i + BATCH]) for i in range(0, n, BATCH)]

        def run():
            metric.reset_state()
            for y, p in batches:
                update(y, p)
            return float(metric.result())

        return run
    if name == "torchmetrics":
        import torch
        from torchmetrics.classification import MulticlassCalibrationError

        metric = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=15, norm="l1")
        batches = [
            (torch.from_numpy(probs[i : i + BATCH]), torch.from_numpy(labels[i : i + BATCH]))
            for i in range(0, n, BATCH)
        ]

        def run():
            metric.reset()
            for p, y in batches:
                metric.update(p, y)
            return float(metric.compute())

        return run
    if name == "netcal":
        from netcal.metrics import ECE

        ece = ECE(bins=15)
        return lambda: float(ece.measure(probs, labels))
    raise ValueError(name)


def _time(fn, repeats):
    fn()  # warm-up (tracing, allocation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def backend_child(n, k, repeats, mode):
    """Our ECE under the backend of ``KERAS_BACKEND``: ``"eager"`` (``update_state`` on NumPy
    batches) or, on JAX, ``"jit"`` (``jax.jit`` of ``stateless_update_state`` on device
    arrays, as Keras' JAX trainer runs metrics). Prints seconds and ECE."""
    _, probs, labels = _probabilities(n, k)
    if mode == "eager":
        run = _ece_runner("ours_eager", probs, labels)
    else:
        import jax
        import jax.numpy as jnp

        import keras_label_relaxation as klr

        metric = klr.ExpectedCalibrationError(num_bins=15)
        step = jax.jit(metric.stateless_update_state)
        batches = [
            (jnp.asarray(labels[i : i + BATCH]), jnp.asarray(probs[i : i + BATCH]))
            for i in range(0, n, BATCH)
        ]

        def run():
            state = [jnp.zeros(v.shape, v.dtype) for v in metric.variables]
            for y, p in batches:
                state = step(state, y, p)
            return float(metric.stateless_result(state))

    seconds, value = _time(run, repeats)
    return f"{seconds} {value}"


def child(name, n, k):
    _, probs, labels = _probabilities(n, k)
    run = _ece_runner(name, probs, labels)
    run()
    return _peak.peak_mib(run)


def temperature_rows(n, k, repeats):
    import numpy as np

    import keras_label_relaxation as klr

    rng = np.random.default_rng(1)
    z = 1.5 * rng.standard_normal((n, k))
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    cumulative = p.cumsum(-1)
    labels = (rng.uniform(size=(n, 1)) > cumulative).sum(-1).clip(0, k - 1)
    logits = (2.5 * z).astype(np.float32)  # overconfident by a factor 2.5
    rows = []
    for method in ("nll", "grid"):
        seconds, temperature = _time(
            lambda m=method: klr.TemperatureScaling().fit(logits, labels, method=m), repeats
        )
        rows.append((f"ours ({method})", seconds, temperature))
    from netcal.scaling import TemperatureScaling as NetcalTemperatureScaling

    # netcal fits on probabilities; in float32 its optimiser does not move (T stays 1).
    probs = np.exp(logits.astype(np.float64) - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)

    def netcal_fit():
        model = NetcalTemperatureScaling()
        model.fit(probs, labels, tensorboard=False)
        # netcal's "temperature" multiplies the log-probabilities: T = 1 / it.
        return 1.0 / float(np.ravel(model.temperature)[0])

    seconds, temperature = _time(netcal_fit, max(1, repeats // 2))
    rows.append(("netcal TemperatureScaling (mle)", seconds, temperature))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--fit-samples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--backend-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend_child:
        *sizes, mode = args.backend_child
        print(backend_child(*map(int, sizes), mode))
        return
    if args.child:
        name, n, k = args.child
        print(child(name, int(n), int(k)))
        return

    import keras
    import netcal
    import tensorflow as tf
    import torch
    import torchmetrics

    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, torch {torch.__version__}, "
        f"torchmetrics {torchmetrics.__version__}, netcal {netcal.__version__}, "
        f"{os.cpu_count()} CPU cores"
    )
    n, k = args.samples, args.classes
    _, probs, labels = _probabilities(n, k)
    print(f"\nECE, {n:,} x {k} float32 probabilities, 15 bins, batches of {BATCH:,}")
    print("| implementation | seconds | samples/s | peak MiB added | ECE |")
    print("| --- | --- | --- | --- | --- |")
    seconds_ece = None
    for name in ECE_IMPLEMENTATIONS:
        seconds, value = _time(_ece_runner(name, probs, labels), args.repeats)
        seconds_ece = seconds_ece or seconds
        memory = _peak.measure(__file__, (name, n, k))
        print(f"| {name} | {seconds:.3f} | {n / seconds:,.0f} | {memory:.1f} | {value:.6f} |")
    # The eager row under Keras' other backends, and JAX's compiled path.
    for backend, mode in (("jax", "eager"), ("torch", "eager"), ("jax", "jit")):
        out = subprocess.run(
            [sys.executable, __file__, "--backend-child", str(n), str(k), str(args.repeats), mode],
            env=dict(os.environ, KERAS_BACKEND=backend),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        seconds, value = map(float, out.stdout.split()[-2:])
        label = f"ours_eager ({backend} backend)" if mode == "eager" else "ours_jax_jit"
        print(f"| {label} | {seconds:.3f} | {n / seconds:,.0f} | | {value:.6f} |")
    print("\nThe other estimators, eager update_state on the same NumPy batches, result() once")
    print("| metric | seconds | samples/s | time / ECE's | peak MiB added | value |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ESTIMATORS:
        seconds, value = _time(_ece_runner(name, probs, labels), args.repeats)
        memory = _peak.measure(__file__, (name, n, k))
        print(
            f"| {name} | {seconds:.3f} | {n / seconds:,.0f} | {seconds / seconds_ece:.2f} | "
            f"{memory:.1f} | {value:.6f} |"
        )

    print(f"\nTemperature fitting, {args.fit_samples:,} x {k} logits (true T = 2.5)")
    print("| implementation | seconds | fitted T |")
    print("| --- | --- | --- |")
    for name, seconds, temperature in temperature_rows(args.fit_samples, k, args.repeats):
        print(f"| {name} | {seconds:.3f} | {temperature:.4f} |")


if __name__ == "__main__":
    main()
