"""Temperature scaling (Guo et al., 2017), the paper's post-hoc calibration baseline."""

import math
import warnings

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _numerics, _validation
from keras_label_relaxation.metrics import functional

#: The paper's temperature grid (results.json, "grids" / "temperature").
PAPER_TEMPERATURE_GRID = (
    0.25, 0.5, 0.75, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.5, 3.0,
)  # fmt: skip

#: The floor of probabilities whose logs serve as logits (``from_logits=False``): the
#: dtype's smallest normal number, not ``keras.backend.epsilon()``, which would erase the
#: tail of a confident softmax (a true temperature of 6 fitted as 4.7).
_LOG_FLOOR = "tiny"


class GridEdgeWarning(UserWarning):
    """``TemperatureScaling.fit(method="grid")`` chose the smallest or largest grid value.

    The lowest-ECE temperature of the grid is then one of its edges, and the
    best temperature may lie beyond it (the paper's grid stops at ``T = 3``).
    Widen ``grid`` or fit ``method="nll"``, which is not bounded by a grid.

    Example:
    >>> import warnings
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 5))
    >>> y = np.array([rng.choice(5, p=np.exp(r) / np.exp(r).sum()) for r in z])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     TemperatureScaling().fit(8.0 * z, y, method="grid")
    3.0
    >>> caught[0].category.__name__
    'GridEdgeWarning'
    """


#: Bounds of the NLL fit: T in [1 / _MAX_INVERSE, 1 / _MIN_INVERSE].
_MIN_INVERSE, _MAX_INVERSE = 1e-3, 1e3


def _check_temperature(temperature):
    valid = not isinstance(temperature, bool) and isinstance(
        temperature, (int, float, np.floating, np.integer)
    )
    if not valid or not math.isfinite(float(temperature)) or float(temperature) <= 0.0:
        raise ValueError(
            "Invalid value for argument `temperature`. Expected a finite float > 0. "
            f"Received: temperature={temperature!r}"
        )
    return float(temperature)


def _held_out_inputs(logits, y_true, sample_weight=None):
    """Validate held-out logits ``(N, K)``, labels and weights; return tensors."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(
            "Temperature scaling is fitted on a non-empty set of logits of shape (N, K) with "
            f"K >= 2. Received: logits.shape={logits.shape}"
        )
    labels = np.asarray(y_true)
    if labels.ndim == 2 and labels.shape[1] == logits.shape[1]:
        labels = labels.argmax(axis=-1)
    labels = labels.reshape(-1)
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"`y_true` must hold one label per row of `logits`. Received: {labels.shape[0]} "
            f"labels for {logits.shape[0]} rows"
        )
    bad = ~((labels >= 0) & (labels < logits.shape[1]) & (labels == np.round(labels)))
    if bad.any():
        raise ValueError(
            f"Invalid value in `y_true`: class ids must be integers in [0, {logits.shape[1]}). "
            f"Received: {labels[bad][:5].tolist()}"
        )
    if not np.isfinite(logits).all():
        raise ValueError("Invalid value for `logits`: every entry must be finite.")
    dtype = _numerics.compute_dtype(logits.dtype)
    if sample_weight is None:
        weights = np.ones(len(labels), dtype=dtype)
    else:
        weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if weights.shape[0] != len(labels):
            raise ValueError(
                "`sample_weight` must hold one weight per row of `logits`. Received: "
                f"{weights.shape[0]} weights for {len(labels)} rows"
            )
        if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
            raise ValueError(
                "Invalid value for argument `sample_weight`: weights must be finite, >= 0 "
                f"and not all 0. Received: {weights[:5].tolist()}..."
            )
    return (
        ops.convert_to_tensor(logits.astype(dtype)),
        ops.convert_to_tensor(labels.astype(np.int32)),
        ops.convert_to_tensor(weights.astype(dtype)),
    )


def _rows_are_distributions(values):
    """Whether every row of ``values`` lies in [0, 1] and sums to 1 (within 1e-3)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        return False  # the shape check of the fit reports it
    sums = values.sum(axis=-1)
    return bool(
        ((values >= 0) & (values <= 1)).all()
        and (np.abs(sums - 1.0) <= _validation.DISTRIBUTION_TOLERANCE).all()
    )


def _logits_of(outputs, from_logits):
    """The logits temperature scaling divides: ``outputs`` or ``log p``; refuses a mix-up.

    Temperature scaling fitted on probabilities instead of logits returns a
    plausible but wrong ``T`` (about 0.3 where the logits give 2). Logits
    whose every row happens to be a distribution do not occur in practice, so
    such input is refused rather than guessed at.
    """
    outputs = np.asarray(ops.convert_to_numpy(outputs))
    if from_logits:
        if _rows_are_distributions(outputs):
            raise ValueError(
                "Invalid value for argument `logits`: every row lies in [0, 1] and sums to 1, "
                "so these are probabilities, not logits; a temperature fitted on them is wrong. "
                "Pass the model's logits, or fit `TemperatureScaling(from_logits=False)` (or "
                "`calibrate(..., from_logits=False)`), which scales log-probabilities."
            )
        return outputs
    if outputs.ndim == 2 and len(outputs) and not _rows_are_distributions(outputs):
        raise ValueError(
            "Invalid value for argument `logits`: with `from_logits=False` every row must "
            "hold probabilities in [0, 1] summing to 1 (within "
            f"{_validation.DISTRIBUTION_TOLERANCE}); these look like logits. Use "
            "`TemperatureScaling(from_logits=True)` (or `calibrate(..., from_logits=True)`)."
        )
    return ops.convert_to_numpy(
        _numerics.log_probabilities(outputs, from_logits=False, floor=_LOG_FLOOR)
    )


def _fit_grid(shifted, labels, weights, grid, num_bins):
    """The paper's protocol: the grid temperature with the lowest ECE.

    ``shifted`` are logits minus their row maximum, so the arg-max (and with it
    correctness) does not depend on ``T`` and the confidence is
    ``1 / sum_k exp(shifted_k / T)``: one pass over the logits per candidate.
    """
    predicted = ops.cast(ops.argmax(shifted, axis=-1), "int32")
    correct = ops.cast(ops.equal(predicted, labels), shifted.dtype)
    eces = []
    for t in grid:
        confidence = 1.0 / ops.sum(ops.exp(shifted / t), axis=-1)
        n, s, a, _ = functional.bin_sums(confidence, correct, weights, num_bins)
        eces.append(float(functional.binned_error(n, s, a, "l1")))
    return grid[int(np.argmin(eces))]


def _warn_at_grid_edge(temperature, grid, stacklevel):
    """Warn (``GridEdgeWarning``) when ``temperature`` is an edge of a grid of >= 2 values.

    ``stacklevel`` as the caller would pass it to ``warnings.warn``.
    """
    lo, hi = min(grid), max(grid)
    if lo == hi or temperature not in (lo, hi):
        return
    side, beyond = ("smallest", "below") if temperature == lo else ("largest", "above")
    warnings.warn(
        f'`method="grid"` chose T={temperature:g}, the {side} value of argument `grid` '
        f"(which spans [{lo:g}, {hi:g}]): the best temperature may lie {beyond} the grid. "
        'Fit with `method="nll"` (not bounded by a grid) or widen `grid`.',
        GridEdgeWarning,
        stacklevel=stacklevel + 1,
    )


def _weighted_mean(values, weights):
    return ops.sum(weights * values) / ops.sum(weights)


def _nll_derivatives(shifted, squared, z_true, weights, inverse):
    """NLL of softmax(inverse * z) and its first two derivatives in ``inverse``.

    With ``z`` shifted so that each row's maximum is 0, ``exp(inverse * z)``
    never overflows: ``NLL = mean(log S - t z_y)``, ``NLL' = mean(E[z] - z_y)``,
    ``NLL'' = mean(Var[z])`` under ``p = exp(t z) / S`` (``squared`` is ``z**2``);
    the means are weighted by ``weights``.
    """
    e = ops.exp(inverse * shifted)
    total = ops.sum(e, axis=-1)
    mean_z = ops.sum(e * shifted, axis=-1) / total
    mean_z2 = ops.sum(e * squared, axis=-1) / total
    value = _weighted_mean(ops.log(total) - inverse * z_true, weights)
    grad = _weighted_mean(mean_z - z_true, weights)
    variance = mean_z2 - ops.square(mean_z)
    hess = _weighted_mean(ops.where(variance < 0.0, ops.zeros_like(variance), variance), weights)
    return float(value), float(grad), float(hess)


def _fit_nll(shifted, labels, weights, max_iter=100):
    """Minimise the NLL over T (Guo et al.): safeguarded Newton in t = 1 / T.

    ``NLL(t) = mean_i logsumexp(t z_i) - t z_iy`` is convex in ``t`` (its
    second derivative is the variance of ``z`` under ``softmax(t z)``), so the
    minimiser is the root of the increasing derivative: Newton steps, falling
    back to bisection (or doubling) whenever a step leaves the bracket. Stops
    when a step changes ``t`` by less than ``rtol * t``, with ``rtol`` 1e-6 in
    float32 (the derivative's rounding noise) and 1e-10 in float64.
    """
    rtol = 1e-10 if keras.backend.standardize_dtype(shifted.dtype) == "float64" else 1e-6
    lo, hi = _MIN_INVERSE, _MAX_INVERSE
    z_true = _numerics.gather_class(shifted, labels)
    squared = ops.square(shifted)
    t = 1.0
    for _ in range(max_iter):
        _, grad, hess = _nll_derivatives(shifted, squared, z_true, weights, t)
        if grad == 0.0:
            break
        if grad > 0:
            hi = t
        else:
            lo = t
        step = t - grad / hess if hess > 0 else float("nan")
        if not lo < step < hi:
            step = 0.5 * (lo + hi) if hi < _MAX_INVERSE else min(2.0 * t, _MAX_INVERSE)
        converged = abs(step - t) <= rtol * t
        t = step
        if converged:
            break
    return 1.0 / t


@keras.saving.register_keras_serializable(package="keras_label_relaxation")
class TemperatureScaling(keras.layers.Layer):
    """Divide logits by a fitted, non-trainable temperature ``T > 0``.

        output = logits / T        (softmax(output) are the calibrated probabilities)

    ``fit`` chooses ``T`` on held-out data: ``method="grid"`` is the paper's
    protocol (the ``T`` of ``PAPER_TEMPERATURE_GRID`` with the lowest ECE),
    ``method="nll"`` minimises the negative log-likelihood over ``T`` (Guo et
    al., 2017). Both work on logits computed once; the model is never re-run.
    The layer computes in float32 (float64 if asked) under every dtype policy
    and saves with the model (``T`` is a weight and in ``get_config``).

    Args:
        temperature: Initial temperature, a finite float > 0.
        from_logits: ``True`` (default: temperature scaling divides logits):
            inputs are logits, and ``fit`` refuses rows that are all
            probabilities. ``False``: inputs are probabilities, whose logs
            are used as logits, and ``fit`` refuses rows that are not
            distributions. ``log p`` is floored only at the dtype's smallest
            normal number (float32: 1.2e-38), in ``fit`` and in ``call``
            alike: ``keras.backend.epsilon()`` (1e-7, the losses' clip) would
            erase the tail of a confident softmax and bias ``T`` low.
        **kwargs: Keras layer arguments (``name``, ``dtype``).

    Shapes: input ``(..., K)``, output ``(..., K)``.

    Example:
    >>> import numpy as np
    >>> layer = TemperatureScaling(temperature=2.0)
    >>> np.asarray(layer(np.array([[2.0, -1.0]], dtype="float32")))
    array([[ 1. , -0.5]], dtype=float32)
    """

    def __init__(self, temperature=1.0, from_logits=True, **kwargs):
        policy = keras.dtype_policies.get(kwargs.pop("dtype", None) or "float32")
        super().__init__(dtype=_numerics.compute_dtype(policy.compute_dtype), **kwargs)
        self.from_logits = bool(from_logits)
        self.temperature = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(_check_temperature(temperature)),
            trainable=False,
            name="temperature",
        )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if not self.from_logits:
            x = _numerics.log_probabilities(x, from_logits=False, floor=_LOG_FLOOR)
        return x / ops.cast(self.temperature, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def set_temperature(self, temperature):
        """Set ``T`` (a finite float > 0)."""
        self.temperature.assign(_check_temperature(temperature))

    def fit(
        self,
        logits,
        y_true,
        method="grid",
        grid=PAPER_TEMPERATURE_GRID,
        num_bins=15,
        sample_weight=None,
    ):
        """Fit ``T`` on held-out data, keep it, and return it.

            grid: T = argmin_{t in grid} ECE(softmax(z / t))
            nll:  T = argmin_{t > 0} -mean_i log softmax(z_i / t)[y_i]

        A grid fit that chooses the smallest or the largest value of a grid of
        more than one value warns (``GridEdgeWarning``, a ``UserWarning``): the
        best ``T`` may lie beyond the grid (the paper's grid ends at 3.0,
        while a confident network can need ``T = 6``); ``method="nll"`` has
        no such edge. Turn it into an error with
        ``warnings.simplefilter("error", GridEdgeWarning)``.

        Args:
            logits: Held-out model outputs ``(N, K)`` as a NumPy array or
                tensor (probabilities when the layer has ``from_logits=False``).
                Rows that contradict ``from_logits`` raise ``ValueError``.
            y_true: Integer labels ``(N,)`` or one-hot rows ``(N, K)``.
            method: ``"grid"`` (lowest ECE over ``grid``, the paper) or
                ``"nll"`` (the NLL minimiser, bounded to ``T`` in [1e-3, 1e3]).
            grid: Candidate temperatures for ``"grid"``; choosing one of its
                edges warns (``GridEdgeWarning``).
            num_bins: ECE bins for ``"grid"``.
            sample_weight: Optional weights ``(N,)`` (or ``(N, 1)``) of the
                held-out rows: the ECE and the NLL are weighted means (an
                integer weight counts like repeating the row).

        Returns:
            The fitted temperature as a Python float.

        Warns:
            GridEdgeWarning: ``method="grid"`` chose the smallest or the
                largest value of ``grid`` (the message names both and ``T``).

        Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(2000, 5))
        >>> y = np.array([rng.choice(5, p=np.exp(r) / np.exp(r).sum()) for r in z])
        >>> round(TemperatureScaling().fit(3.0 * z, y, method="nll"), 1)
        3.0
        """
        return self._fit(logits, y_true, method, grid, num_bins, sample_weight)

    def _fit(self, logits, y_true, method, grid, num_bins, sample_weight):
        """``fit``, called by ``fit`` and ``calibrate``: a ``GridEdgeWarning`` points at
        their caller (two frames up)."""
        if method not in ("grid", "nll"):
            raise ValueError(
                "Invalid value for argument `method`. Expected 'grid' or 'nll'. "
                f"Received: method={method!r}"
            )
        outputs = _logits_of(logits, self.from_logits)
        z, labels, weights = _held_out_inputs(outputs, y_true, sample_weight)
        z = z - ops.max(z, axis=-1, keepdims=True)
        if method == "grid":
            grid = tuple(_check_temperature(t) for t in grid)
            if not grid:
                raise ValueError("Invalid value for argument `grid`: it is empty.")
            temperature = _fit_grid(
                z, labels, weights, grid, _validation.check_integer(num_bins, "num_bins", 1)
            )
            _warn_at_grid_edge(temperature, grid, stacklevel=3)
        else:
            temperature = _fit_nll(z, labels, weights)
        self.set_temperature(temperature)
        return float(temperature)

    def get_config(self):
        return {
            **super().get_config(),
            "temperature": float(ops.convert_to_numpy(self.temperature)),
            "from_logits": self.from_logits,
        }


def _ends_in_softmax(model):
    last = model.layers[-1] if getattr(model, "layers", None) else None
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return activation is keras.activations.softmax


def _is_array(value):
    return isinstance(value, np.ndarray) or (
        hasattr(value, "shape") and hasattr(value, "dtype") and not hasattr(value, "element_spec")
    )


def _unpack(batch):
    """``(x, y, sample_weight)`` of a batch, as Keras' ``fit`` unpacks it."""
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        return batch[0], batch[1], batch[2] if len(batch) == 3 else None
    raise ValueError(
        "Invalid value for argument `validation_data`: every batch must be `(x, y)` or "
        f"`(x, y, sample_weight)`. Received a batch of type {type(batch).__name__}"
        + (f" with {len(batch)} elements" if isinstance(batch, (tuple, list)) else "")
    )


def _predict_with_labels(model, validation_data, batch_size):
    """Model outputs, labels and weights (``None``: unweighted) of held-out data.

    Takes what ``model.fit``'s ``validation_data`` takes: ``(x, y)`` or ``(x,
    y, sample_weight)`` as a tuple or a list, or an iterable of such batches
    (``tf.data.Dataset``, a generator, a ``keras.utils.PyDataset``, a torch
    ``DataLoader``).
    """
    if (
        isinstance(validation_data, (tuple, list))
        and len(validation_data) in (2, 3)
        and _is_array(validation_data[1])
    ):
        x, y, w = _unpack(validation_data)
        outputs = model.predict(x, batch_size=batch_size, verbose=0)
        labels = np.asarray(ops.convert_to_numpy(y))
        return outputs, labels, None if w is None else np.asarray(ops.convert_to_numpy(w))
    if isinstance(validation_data, keras.utils.PyDataset):
        validation_data = (validation_data[i] for i in range(len(validation_data)))
    outputs, labels, weights = [], [], []
    for batch in validation_data:
        x, y, w = _unpack(batch)
        outputs.append(ops.convert_to_numpy(model(x, training=False)))
        labels.append(ops.convert_to_numpy(y))
        weights.append(None if w is None else ops.convert_to_numpy(w).reshape(-1))
    if not outputs:
        raise ValueError("`validation_data` is empty: temperature scaling needs held-out data.")
    if any(w is None for w in weights) and not all(w is None for w in weights):
        raise ValueError(
            "Invalid value for argument `validation_data`: some batches carry a "
            "sample_weight and others do not."
        )
    weights = None if weights[0] is None else np.concatenate(weights)
    return np.concatenate(outputs), np.concatenate(labels), weights


def calibrate(
    model,
    validation_data,
    method="grid",
    grid=PAPER_TEMPERATURE_GRID,
    num_bins=15,
    batch_size=256,
    from_logits=None,
):
    """Return a model that outputs temperature-scaled (calibrated) probabilities.

    The model runs once over ``validation_data``; ``TemperatureScaling.fit``
    chooses ``T`` on those outputs. For a model that outputs probabilities the
    log of its probabilities serves as logits (``softmax(log p / T)``, ``p``
    floored only at the dtype's smallest normal number, so a confident
    softmax keeps its tail). The
    returned model is ``model`` followed by ``TemperatureScaling`` and a
    float32 ``Softmax``; it saves and loads as one ``.keras`` file.

    Args:
        model: A Keras model with one output ``(batch, K)``.
        validation_data: What ``model.fit``'s ``validation_data`` takes:
            ``(x, y)`` or ``(x, y, sample_weight)`` arrays (a tuple or a
            list), or an iterable of such batches (``tf.data.Dataset``, a
            generator, a ``keras.utils.PyDataset``); labels are integer ids
            or one-hot rows. Weights weight the fit.
        method: ``"grid"`` (the paper) or ``"nll"``.
        grid: Candidate temperatures for ``"grid"``; choosing the smallest or
            the largest warns (``GridEdgeWarning``), as in
            ``TemperatureScaling.fit``.
        num_bins: ECE bins for ``"grid"``.
        batch_size: Prediction batch size for array inputs.
        from_logits: Whether the model outputs logits. ``None`` (default)
            decides from the last layer: a softmax (a ``Softmax`` layer or
            ``activation="softmax"``) means probabilities, anything else
            logits; outputs that contradict the decision raise a
            ``ValueError`` (never a silently wrong ``T``) that says to pass
            ``from_logits`` explicitly.

    Returns:
        A ``keras.Model``; its ``TemperatureScaling`` layer,
        ``get_layer("temperature_scaling")``, holds the fitted ``T`` in
        ``.temperature``.

    Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x, y = np.ones((8, 4), "float32"), np.arange(8) % 3
    >>> calibrated = calibrate(model, (x, y), method="nll")
    >>> tuple(calibrated(x).shape)
    (8, 3)
    """
    if from_logits not in (None, True, False):
        raise ValueError(
            "Invalid value for argument `from_logits`. Expected None, True or False. "
            f"Received: from_logits={from_logits!r}"
        )
    if from_logits is None:
        from_logits = not _ends_in_softmax(model)
    outputs, labels, weights = _predict_with_labels(model, validation_data, batch_size)
    scaling = TemperatureScaling(from_logits=from_logits, name="temperature_scaling")
    # Not scaling.fit: a GridEdgeWarning then points at the caller of calibrate.
    scaling._fit(outputs, labels, method, grid, num_bins, weights)
    softmax = keras.layers.Softmax(dtype="float32", name="calibrated_probabilities")
    if getattr(model, "inputs", None):
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        return keras.Model(inputs, softmax(scaling(model.outputs[0])), name="calibrated")
    return keras.Sequential([model, scaling, softmax], name="calibrated")
