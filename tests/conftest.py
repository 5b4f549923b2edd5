import os

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
