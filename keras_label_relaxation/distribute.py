"""Data-parallel training on the JAX backend: one or several processes, exact or loud.

``klr compare --strategy data-parallel`` (and ``klr reproduce``) trains under
``keras.distribution.DataParallel`` over every device of every process; several
processes (hosts) join through ``keras.distribution.initialize``. The runner
trains through ``fit`` and predicts through ``predict`` of this module, which
fall back to the model's own ``fit`` / ``predict`` when no ``DataParallel``
distribution is active (the default strategy and TensorFlow's ``mirrored``).

Under ``DataParallel``, Keras' own ``fit``, ``evaluate`` and ``predict`` fail on
a last batch that does not split over the devices (JAX's ``IndivisibleError``),
and with several processes each process feeds *its share* of every global
batch: the same arrays fed to ``model.fit`` in every process train on every
example once per process, and ``model.predict`` cannot fetch its sharded
output ("non-addressable devices"). So here:

- Training: every epoch shuffles with a permutation drawn from NumPy's global
  generator (seeded by ``keras.utils.set_random_seed``, so the same in every
  process), keeps ``len(x) // batch_size`` full global batches and drops the
  rest (fewer than ``batch_size`` examples, a different rest every epoch);
  process ``i`` of ``P`` feeds rows ``[i * B / P, (i + 1) * B / P)`` of each
  global batch of ``B``. The step count is the same in every process. This
  differs from the default strategy's ``fit`` (which trains on the last,
  smaller batch too and shuffles with its own order) by less than one batch per
  epoch; one process on one device and ``P`` processes on any number of devices
  train on the same batches and reach the same weights.
- Validation (``validation_data``, ``(x, y)`` or ``(x, y, sample_weight)``:
  the search's ``val_loss``, ``val_accuracy`` and ``val_ece``) and prediction
  use *every* example: each process runs them on one of its own devices, from
  its copy of the (replicated) weights, outside the sharded step. Validation
  is Keras' ``evaluate`` there: the model's own ``test_step`` (the loss as
  ``compile`` resolved it, a name such as ``"sparse_categorical_crossentropy"``
  included; sample weights; regularisation) in batches of
  ``validation_batch_size``, so ``val_loss`` and the metrics equal
  ``model.evaluate(x, y, sample_weight=w, batch_size=...)`` on one device.
- Before training, the processes compare a digest of their data, settings,
  drawn shuffle seed and initial weights; any difference raises (a process
  resumed from another state, different data): never a silent mix.
"""

import contextlib
import hashlib
import os
import weakref

import keras
import numpy as np

#: ``--strategy`` value of this mode.
STRATEGY = "data-parallel"
_FIT_ARGUMENTS = {"validation_data", "validation_batch_size", "shuffle", "callbacks", "verbose"}


def _check_backend():
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            f"Invalid value for argument `strategy`: {STRATEGY!r} trains through "
            "keras.distribution.DataParallel, which needs the JAX backend (KERAS_BACKEND=jax). "
            f"Received: strategy={STRATEGY!r} with backend={backend!r}"
        )


@contextlib.contextmanager
def data_parallel(job_addresses=None, num_processes=None, process_id=None):
    """Train under ``keras.distribution.DataParallel`` over all devices of all processes.

    With several processes, the first call joins them through
    ``keras.distribution.initialize`` (JAX: ``jax.distributed.initialize``),
    which also reads Keras' environment variables
    ``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES``
    and ``KERAS_DISTRIBUTION_PROCESS_ID`` for the arguments left ``None``.
    Inside the context, ``fit`` and ``predict`` of this module train and
    predict data-parallel.

    Args:
        job_addresses: ``"HOST:PORT"`` of process 0 (the coordinator), or
            the comma-separated addresses of all processes (Keras' form).
        num_processes: Number of processes; ``None`` or 1 with no
            environment variable: this process alone.
        process_id: This process' index in ``[0, num_processes)``.

    Raises:
        ValueError: on a backend other than JAX, or inconsistent arguments.

    Example:
    >>> with data_parallel():  # doctest: +SKIP
    ...     model = fit(model, x, y, epochs=2, batch_size=64)
    """
    _check_backend()
    import jax

    if num_processes is None and "KERAS_DISTRIBUTION_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["KERAS_DISTRIBUTION_NUM_PROCESSES"])
    if num_processes is not None and num_processes < 1:
        raise ValueError(
            "Invalid value for argument `num_processes`. Expected an integer >= 1. "
            f"Received: num_processes={num_processes}"
        )
    if (num_processes or 1) > 1 and not jax.distributed.is_initialized():
        if process_id is None and "KERAS_DISTRIBUTION_PROCESS_ID" not in os.environ:
            raise ValueError(
                f"Invalid value for argument `process_id`: {num_processes} processes need each "
                "process' index (or KERAS_DISTRIBUTION_PROCESS_ID). Received: process_id=None"
            )
        if process_id is not None and not 0 <= process_id < num_processes:
            raise ValueError(
                f"Invalid value for argument `process_id`. Expected an integer in [0, "
                f"{num_processes}). Received: process_id={process_id}"
            )
        keras.distribution.initialize(job_addresses, num_processes, process_id)
    if num_processes is not None and num_processes != jax.process_count():
        raise ValueError(
            f"Invalid value for argument `num_processes`: JAX runs {jax.process_count()} "
            f"processes. Received: num_processes={num_processes}"
        )
    distribution = keras.distribution.DataParallel()
    # Each process feeds its own share of every global batch (``fit`` below).
    distribution.auto_shard_dataset = False
    with distribution.scope():
        yield distribution


def active():
    """Whether a ``keras.distribution.DataParallel`` distribution is active (JAX only)."""
    return keras.backend.backend() == "jax" and isinstance(
        keras.distribution.distribution(), keras.distribution.DataParallel
    )


def process_index():
    """This process' index among the JAX processes (0 without ``data_parallel``)."""
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def out_dir_of_process(out_dir):
    """``out_dir`` for process 0, ``out_dir/process-<i>`` for process ``i > 0``.

    Every process computes the same results and keeps its own resumable state
    (the run store, keras-tuner's trials), so no two processes write one file.

    Example:
    >>> out_dir_of_process("klr-results/run")
    'klr-results/run'
    """
    index = process_index()
    return out_dir if index == 0 else os.path.join(out_dir, f"process-{index}")


@contextlib.contextmanager
def _no_distribution():
    """Compute outside the distribution (local arrays, local device)."""
    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


def _local_values(variables):
    """Each variable's value as an array on this process' first device (replicated weights)."""
    import jax

    values = []
    for variable in variables:
        value = variable.value
        if isinstance(value, jax.Array):
            if not value.sharding.is_fully_replicated:
                raise ValueError(
                    f"Variable {variable.path!r} is sharded ({value.sharding}), not replicated: "
                    "this module's prediction needs DataParallel's replicated weights."
                )
            value = value.addressable_data(0)
        values.append(value)
    return values


def _as_batch(array, device):
    """A NumPy batch as Keras' data adapter feeds it (floats in ``floatx``), on ``device``."""
    import jax

    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating) and array.dtype != keras.backend.floatx():
        array = array.astype(keras.backend.floatx())
    return jax.device_put(array, device)


#: ``{model: jitted inference call}``: one compilation per model and input shape.
_CALLS = weakref.WeakKeyDictionary()


def _predict_locally(model, x, batch_size):
    """The model's outputs on all of ``x``, on this process' first device."""
    import jax

    trainable = _local_values(model.trainable_variables)
    non_trainable = _local_values(model.non_trainable_variables)
    device = jax.local_devices()[0]
    trainable, non_trainable = jax.device_put((trainable, non_trainable), device)

    call = _CALLS.get(model)
    if call is None:

        @jax.jit
        def call(trainable, non_trainable, x):
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        _CALLS[model] = call
    logits = []
    with _no_distribution():
        for start in range(0, len(x), batch_size):
            batch = _as_batch(x[start : start + batch_size], device)
            logits.append(np.asarray(call(trainable, non_trainable, batch)))
    return np.concatenate(logits)


def predict(model, x, batch_size=None):
    """The model's outputs on every row of ``x``; data-parallel-safe.

    Under ``data_parallel``, every process computes the outputs of the whole of
    ``x`` on its first device from its copy of the replicated weights (Keras'
    ``predict`` fails there on a ragged last batch, and with several processes
    on any batch). Otherwise ``model.predict(x, batch_size=batch_size)``.

    Args:
        model: A built Keras model with one output.
        x: NumPy inputs.
        batch_size: Rows per call (``None``: Keras' default of ``predict``, 256
            under ``data_parallel``).

    Returns:
        A NumPy array of the outputs, ``len(x)`` rows.

    Example:
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> predict(model, np.ones((5, 3), "float32")).shape
    (5, 2)
    """
    if not active():
        return model.predict(x, batch_size=batch_size, verbose=0)
    return _predict_locally(model, x, batch_size or 256)


class _ProcessShare(keras.utils.PyDataset):
    """This process' share of every full global batch of a seeded per-epoch shuffle."""

    def __init__(self, x, y, batch_size, shuffle, seed, processes, index):
        super().__init__()
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.share = batch_size // processes
        self.offset = index * self.share
        self.epoch = 0
        self.order = self._order()

    def _order(self):
        if not self.shuffle:
            return np.arange(len(self.y))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.y))

    def __len__(self):
        return len(self.y) // self.batch_size

    def __getitem__(self, step):
        start = step * self.batch_size + self.offset
        rows = self.order[start : start + self.share]
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self._order()


class _ExactValidation(keras.callbacks.Callback):
    """``val_loss`` and ``val_<metric>`` on every validation example, at each epoch's end.

    Keras' own ``evaluate``, run on this process' first device: the model's
    ``test_step`` (so the compiled loss as ``compile`` resolved it, a loss
    given by name included, ``sample_weight``, ``weighted_metrics`` and the
    regularisation losses, as Keras scores them) over batches of
    ``batch_size``, the loss averaged over the batches weighted by their size,
    the metrics read from their state. The metrics are reset first and the
    other callbacks get ``on_test_*`` as in ``evaluate`` (``AlphaScheduler``
    sets a scheduled ``alpha`` there).
    """

    def __init__(self, x, y, sample_weight, batch_size, callbacks):
        super().__init__()
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size = batch_size
        self.others = callbacks

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        model = self.model
        callbacks = keras.callbacks.CallbackList(
            self.others, add_history=False, add_progbar=False, model=model
        )
        callbacks.on_test_begin()
        model.reset_metrics()
        scores = _evaluate_locally(
            model, self.x, self.y, self.sample_weight, self.batch_size, callbacks
        )
        callbacks.on_test_end(scores)
        logs.update({f"val_{name}": value for name, value in scores.items()})


#: ``{model: jitted test step}``: one compilation per model and batch shape.
_TEST_STEPS = weakref.WeakKeyDictionary()


def _evaluate_locally(model, x, y, sample_weight, batch_size, callbacks):
    """``model.evaluate(x, y, sample_weight=..., batch_size=...)``'s logs, on one local device.

    From the current (replicated) variables, outside the distribution, with
    ``callbacks``' ``on_test_batch_begin`` / ``_end`` around every step; the
    model's metric variables are left as they are.
    """
    import jax

    step = _TEST_STEPS.get(model)
    if step is None:
        step = jax.jit(model.test_step)
        _TEST_STEPS[model] = step
    device = jax.local_devices()[0]
    state, logs = None, {}
    with _no_distribution():
        for index, start in enumerate(range(0, len(y), batch_size)):
            rows = slice(start, start + batch_size)
            data = (x[rows], y[rows]) + (() if sample_weight is None else (sample_weight[rows],))
            data = tuple(_as_batch(part, device) for part in data)
            callbacks.on_test_batch_begin(index)
            if state is None:  # after the first callback, as Keras reads the state
                state = tuple(
                    jax.device_put(_local_values(variables), device)
                    for variables in (
                        model.trainable_variables,
                        model.non_trainable_variables,
                        model.metrics_variables,
                    )
                )
            logs, state = step(state, data)
            callbacks.on_test_batch_end(index, logs)
        mapping = list(zip(model.metrics_variables, state[2]))
        with keras.StatelessScope(state_mapping=mapping):
            results = model.get_metrics_result()
    # As Keras: the metrics' results unless a custom test_step logs other names.
    if isinstance(logs, dict) and set(logs) != set(results):
        results = logs
    return {name: float(np.asarray(value)) for name, value in results.items()}


def _digest(*parts):
    digest = hashlib.sha256()
    for part in parts:
        array = np.ascontiguousarray(part)
        digest.update(repr((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return np.frombuffer(digest.digest(), dtype=np.int32)


def _check_processes_agree(model, x, y, settings, validation_data):
    """Raise unless every process trains the same model on the same data and settings."""
    import jax
    from jax.experimental import multihost_utils

    weights = [np.asarray(v) for v in _local_values(model.trainable_variables)]
    validation = [a for a in validation_data or () if a is not None]
    local = _digest(x, y, np.array(settings, dtype=np.int64), *validation, *weights)
    gathered = np.asarray(multihost_utils.process_allgather(local))
    differing = [i for i in range(len(gathered)) if not np.array_equal(gathered[i], gathered[0])]
    if differing:
        raise RuntimeError(
            f"Data-parallel processes {differing} would train on other data, settings or initial "
            f"weights than process 0 (this is process {jax.process_index()}): every process must "
            "run the same command on the same data from the same state. A resumed run whose "
            "processes stopped at different points cannot continue: start it in a new --out."
        )


def _unpack_validation(validation_data):
    """``(x, y, sample_weight or None)`` as NumPy arrays from ``(x, y)`` or ``(x, y, w)``."""
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError(
            "Invalid value for argument `validation_data`: data-parallel fit takes NumPy "
            "`(x, y)` or `(x, y, sample_weight)`. "
            f"Received: validation_data of type {type(validation_data).__name__}"
        )
    x_val, y_val, weight = keras.utils.unpack_x_y_sample_weight(tuple(validation_data))
    x_val, y_val = np.asarray(x_val), np.asarray(y_val)
    if weight is not None:
        weight = np.asarray(weight)
    if not len(y_val) or any(len(a) != len(y_val) for a in (x_val, weight) if a is not None):
        raise ValueError(
            "Invalid value for argument `validation_data`: x, y and sample_weight must hold "
            f"the same number (>= 1) of rows. Received: {[len(a) for a in validation_data]}"
        )
    return x_val, y_val, weight


def fit(model, x=None, y=None, epochs=1, batch_size=None, **kwargs):
    """Train ``model`` on NumPy ``(x, y)``; data-parallel when ``data_parallel`` is active.

    Without a ``DataParallel`` distribution this is ``model.fit(x, y,
    epochs=epochs, batch_size=batch_size, **kwargs)``. Under it (see the
    module's notes): seeded per-epoch shuffle, ``len(x) // batch_size`` full
    global batches per epoch (the rest dropped), each process feeding its share
    of each batch; ``validation_data`` (``(x, y)`` or ``(x, y,
    sample_weight)``) is scored on every example at the end of each epoch as
    ``model.evaluate`` scores it on one device (``val_loss`` and
    ``val_<metric>`` in the logs, before any other callback sees them).

    Args:
        model: A compiled Keras model (logits or probabilities, one output).
        x, y: NumPy arrays, the same in every process.
        epochs: Number of epochs.
        batch_size: The *global* batch size; under ``DataParallel`` a
            multiple of the number of devices of all processes, at most
            ``len(x)``.
        **kwargs: ``validation_data``, ``validation_batch_size``, ``shuffle``,
            ``callbacks``, ``verbose`` (as ``model.fit``).

    Returns:
        The ``History`` of ``model.fit``.

    Raises:
        ValueError: naming ``batch_size`` when it does not split over the
            devices or exceeds the data, ``validation_data`` when it is not
            such a tuple, other ``model.fit`` arguments under ``DataParallel``.

    Example:
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile("sgd", "sparse_categorical_crossentropy")
    >>> fit(model, np.ones((8, 3)), np.zeros(8), batch_size=4, verbose=0).history["loss"][0] > 0
    True
    """
    if not active():
        return model.fit(x, y, epochs=epochs, batch_size=batch_size, **kwargs)
    import jax

    unknown = sorted(set(kwargs) - _FIT_ARGUMENTS)
    if unknown:
        raise ValueError(
            f"Invalid arguments for data-parallel fit: {unknown}; supported are "
            f"{sorted(_FIT_ARGUMENTS)}. Received: {', '.join(f'{k}=...' for k in unknown)}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            "Invalid value for argument `batch_size`: data-parallel training needs the global "
            f"batch size, an integer >= 1. Received: batch_size={batch_size!r}"
        )
    x, y = np.asarray(x), np.asarray(y)
    devices, processes = jax.device_count(), jax.process_count()
    if batch_size % devices:
        raise ValueError(
            f"Invalid value for argument `batch_size`: under DataParallel the global batch must "
            f"split evenly over the {devices} devices ({processes} process(es)). "
            f"Received: batch_size={batch_size}"
        )
    if batch_size > len(y):
        raise ValueError(
            f"Invalid value for argument `batch_size`: data-parallel training keeps full "
            f"batches only, and the data have {len(y)} examples. Received: batch_size={batch_size}"
        )
    validation_data = _unpack_validation(kwargs.pop("validation_data", None))
    validation_batch_size = kwargs.pop("validation_batch_size", None) or batch_size
    shuffle = kwargs.pop("shuffle", True)
    callbacks = list(kwargs.pop("callbacks", None) or [])
    # NumPy's global generator, which keras.utils.set_random_seed seeds alike in every process.
    seed = int(np.random.randint(2**31 - 1))  # noqa: NPY002
    if processes > 1:
        settings = [epochs, batch_size, validation_batch_size, int(bool(shuffle)), seed]
        _check_processes_agree(model, x, y, settings, validation_data)
    if validation_data is not None:
        validation = _ExactValidation(*validation_data, validation_batch_size, list(callbacks))
        callbacks.insert(0, validation)
    share = _ProcessShare(x, y, batch_size, shuffle, seed, processes, jax.process_index())
    return model.fit(share, epochs=epochs, callbacks=callbacks, **kwargs)
