import json
import os
import subprocess
import sys
import textwrap

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
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (to_numpy(fn(up)).sum() - to_numpy(fn(down)).sum()) / (2 * h)
    return numeric


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


# Run before any test body: TensorFlow's logical devices must be set before it initialises,
# hence a subprocess. The body sees np, tf, keras, klr and data x (256, 8), y (256,) in [0, 4).
_TWO_CPUS_PREAMBLE = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
import keras
import keras_label_relaxation as klr

rng = np.random.default_rng(0)
x = rng.standard_normal((256, 8)).astype("float32")
y = rng.integers(0, 4, 256)
"""


def run_on_two_logical_cpus(body, timeout=300):
    """Run ``body`` in a TensorFlow process with 2 logical CPUs; return its last line as JSON."""
    script = _TWO_CPUS_PREAMBLE + textwrap.dedent(body)
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
