import gzip
import json
import math
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def restore_policy():
    """Restore the global dtype policy after a test changes it."""
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


def value_and_grad(fn, x):
    """``sum(fn(x))`` and its gradient with respect to ``x`` (NumPy in, NumPy out)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        t = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            value = tf.reduce_sum(fn(t))
        return value.numpy(), tape.gradient(value, t).numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        value, grad = jax.value_and_grad(lambda t: jnp.sum(fn(t)))(jnp.asarray(x))
        return np.asarray(value), np.asarray(grad)
    if backend == "torch":
        import torch

        t = torch.tensor(x, requires_grad=True)
        value = fn(t).sum()
        value.backward()
        return value.detach().numpy(), t.grad.numpy()
    raise NotImplementedError(backend)


def finite_difference_grad(fn, x, h=1e-6):
    """Central differences of ``sum(fn(x))`` with respect to every entry of ``x`` (float64)."""
    if keras.backend.backend() == "jax":  # one compilation instead of 2 x.size eager calls
        import jax

        fn = jax.jit(fn)
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (to_numpy(fn(up)).sum() - to_numpy(fn(down)).sum()) / (2 * h)
    return numeric


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


# Data and the loss variants the distribution tests train with (x (256, 8), y (256,) in
# [0, 4); ``cases`` maps a name to (loss factory, targets): every loss of the registry,
# sparse and dense, soft-target label relaxation and binary label relaxation).
_DATA_AND_CASES = """
import keras
import keras_label_relaxation as klr

rng = np.random.default_rng(0)
x = rng.standard_normal((256, 8)).astype("float32")
y = rng.integers(0, 4, 256)
one_hot = np.eye(4, dtype="float32")[y]
lam = rng.uniform(0.5, 1.0, (256, 1)).astype("float32")
soft = lam * one_hot + (1 - lam) * np.eye(4, dtype="float32")[rng.integers(0, 4, 256)]
binary = rng.integers(0, 2, (256, 4)).astype("float32")
cases = {f"{name}/{'sparse' if sparse else 'dense'}": (
    lambda name=name, sparse=sparse: klr.get_loss(name, sparse=sparse, from_logits=True),
    y if sparse else one_hot)
    for name in klr.LOSS_PARAMETERS for sparse in (True, False)}
cases["label_relaxation/soft"] = (lambda: klr.LabelRelaxation(0.1, from_logits=True), soft)
cases["binary_label_relaxation"] = (
    lambda: klr.BinaryLabelRelaxation(0.1, from_logits=True), binary)
"""

# Devices must be configured before the backend initialises, hence a subprocess.
_TWO_DEVICES = {
    "tensorflow": """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
""",
    "jax": """
import json, os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import numpy as np
import jax
assert len(jax.devices("cpu")) == 2
""",
}


def run_on_two_devices(backend, body, timeout=300):
    """Run ``body`` in a ``backend`` process with 2 CPU devices; return its last line as JSON.

    TensorFlow splits the CPU into 2 logical devices, JAX into 2 host-platform devices.
    The body sees np, keras, klr (and tf or jax), the data and ``cases`` above.
    """
    script = _TWO_DEVICES[backend] + _DATA_AND_CASES + textwrap.dedent(body)
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_histories_agree(results, abs_tolerance=1e-5):
    """Every run's History on one device ("one") equals the distributed run's ("two")."""
    assert len(results) == 18  # every registry loss sparse and dense, soft LR, binary LR
    for name, runs in results.items():
        assert set(runs["one"]) == set(runs["two"]), name
        for key, series in runs["one"].items():
            assert runs["two"][key] == pytest.approx(series, abs=abs_tolerance, nan_ok=True), (
                name,
                key,
            )
            # NaN only where it is the documented answer: ECE needs one true class per sample,
            # so soft (MixUp) target rows make it NaN; every other value is finite.
            soft_ece = name == "label_relaxation/soft" and key == "ece"
            assert all(math.isnan(v) == soft_ece for v in series), (name, key, series)
        assert runs["one"]["loss"][-1] < runs["one"]["loss"][0], name  # training moved


def write_idx(path, array, type_code=0x08, compress=False):
    """Write ``array`` as an IDX file (big-endian; 0x08 is unsigned bytes), gzipped if asked."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)


def free_ports(count=1):
    """``count`` distinct free TCP ports on 127.0.0.1 (all bound at once while picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_processes(
    commands, log_dir, deadline, watch=None, check=True, cwd=None, until=None, grace=0.0
):  # fmt: skip
    """Run ``{name: (argv, env)}`` at once under a deadline; kill what still runs at the end.

    Every process writes to ``log_dir/NAME.log``. ``watch(logs)``, polled with
    ``{name: log text}`` while they run, may name a process to SIGKILL.
    ``check``: fail at once when a process (not one killed) exits non-zero.
    ``until``: the run ends ``grace`` seconds after the process of that name
    exits; the others still running are then SIGKILLed (exit code ``None``).
    The deadline fails the test. In ``finally``, every process still running is
    SIGKILLed (a deadlocked JAX or gRPC process ignores SIGTERM).

    Returns:
        ``({name: log text}, {name: exit code})`` (killed processes excluded from the codes).
    """
    paths = {name: os.path.join(log_dir, f"{name}.log") for name in commands}

    def logs(names=None, chars=None):
        texts = {}
        for name in names or commands:
            with open(paths[name]) as f:
                texts[name] = f.read()[-chars:] if chars else f.read()
        return texts

    def tails(names):
        return "\n".join(f"--- {n} ---\n{t}" for n, t in logs(names, 4000).items())

    processes, killed = {}, set()
    try:
        for name, (argv, env) in commands.items():
            with open(paths[name], "w") as log:
                processes[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd=cwd)
        end, cut_at = time.monotonic() + deadline, None
        while any(p.poll() is None for p in processes.values()):
            if until is not None and processes[until].poll() is not None:
                cut_at = cut_at or time.monotonic() + grace
                if time.monotonic() >= cut_at:
                    break
            failed = [n for n, p in processes.items() if p.poll() not in (None, 0)]
            failed = [n for n in failed if n not in killed]
            assert not (check and failed), f"failed: {failed}\n" + tails(failed)
            running = [n for n, p in processes.items() if p.poll() is None]
            assert time.monotonic() < end, f"still running after {deadline} s:\n" + tails(running)
            victim = watch(logs()) if watch is not None else None
            if victim is not None and victim not in killed:
                processes[victim].kill()
                killed.add(victim)
            time.sleep(0.05)
    finally:
        cut = {n for n, p in processes.items() if p.poll() is None}
        for p in processes.values():
            if p.poll() is None:
                p.kill()
            p.wait()
    codes = {n: None if n in cut else p.returncode for n, p in processes.items() if n not in killed}
    failed = [n for n, code in codes.items() if code not in (0, None)]
    assert not (check and failed), f"failed: {failed}\n" + tails(failed)
    return logs(), codes
