"""Self-training on labelled plus unlabelled data in ``model.fit``: credal, hard, supervised.

``SelfTraining`` wraps a classifier. Fed ``((x_labelled, x_unlabelled),
y_labelled)`` batches (``SemiSupervisedBatches`` draws them), one training
step runs the classifier once over the weak views of the labelled examples
and the weak and strong views of the unlabelled ones (one pass, as the
authors' code does, so batch statistics see all of them), and minimises

    L = L_labelled(y, f(weak(x_l))) + lambda_u * L_unlabelled

where ``L_labelled`` is the loss given to ``compile`` and, per method:

- ``"credal"`` (CSSL): ``mean_i LR(k_i, alpha_i; f(strong(u_i)))``, the label
  relaxation loss towards the credal pseudo-label of the weak view
  (``credal.credal_targets``, with distribution alignment over a window of
  recent batches);
- ``"hard"`` (FixMatch): ``mean_i [max p_i >= tau] CE(k_i; f(strong(u_i)))``;
- ``"supervised"``: no unlabelled term (the same steps, views and budget).

Both unlabelled means divide by the unlabelled batch size, counting masked
examples and examples inside their credal set (as the authors' code). Metrics
and evaluation see the labelled logits only; ``predict`` and ``evaluate`` on
plain inputs run the classifier.

The batches of epoch ``e`` are ``SemiSupervisedBatches.draws(e)``: ``fit`` on a
``SemiSupervisedBatches`` sets the epoch from Keras' own epoch count at the
start of every epoch (a callback), so Keras' look-ahead before the first
epoch (which ends an "epoch" of the data set on every backend) shifts nothing.
"""

import inspect

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _validation
from keras_label_relaxation.losses.label_relaxation import sparse_label_relaxation
from keras_label_relaxation.semi_supervised import credal

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")
METHODS = ("credal", "hard", "supervised")


@_SERIALIZABLE
class SelfTraining(keras.Model):
    """A classifier trained on labelled and unlabelled data (see the module docstring).

    Args:
        model: The classifier, a built Keras model with one input that outputs
            logits ``(N, K)``.
        method: ``"credal"``, ``"hard"`` or ``"supervised"``.
        weak: The weak augmentation (a Keras layer or model; ``None``: none).
        strong: The strong augmentation, applied to the unlabelled examples
            (``None``: none).
        unlabelled_weight: ``lambda_u`` (1 in CSSL and FixMatch).
        threshold: ``tau`` of ``"hard"`` (0.95 in FixMatch).
        alignment_window: Batches in ``p_model``'s window (128 in CSSL).
        data_prior: Class prior ``p_data`` (``None``: uniform).
        name: Model name.

    Example:
    >>> import keras, numpy as np
    >>> classifier = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model = SelfTraining(classifier, method="credal")
    >>> model.compile(
    ...     optimizer="sgd",
    ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...     metrics=["accuracy"],
    ... )
    >>> rng = np.random.default_rng(0)
    >>> batches = SemiSupervisedBatches(
    ...     rng.normal(size=(6, 4)), np.arange(6) % 3, rng.normal(size=(50, 4)),
    ...     batch_size=3, unlabelled_ratio=2, steps_per_epoch=4)
    >>> history = model.fit(batches, epochs=2, verbose=0)
    """

    def __init__(
        self,
        model,
        method="credal",
        weak=None,
        strong=None,
        unlabelled_weight=1.0,
        threshold=0.95,
        alignment_window=128,
        data_prior=None,
        name=None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if method not in METHODS:
            raise ValueError(
                f"Invalid value for argument `method`. Expected one of {METHODS}. "
                f"Received: method={method!r}"
            )
        self.classifier = model
        self.method = method
        self.weak = weak
        self.strong = strong
        self.unlabelled_weight = float(unlabelled_weight)
        self.threshold = float(threshold)
        self.alignment_window = int(alignment_window)
        num_classes = model.output_shape[-1]
        self.data_prior = None if data_prior is None else [float(v) for v in data_prior]
        self.model_prior_window = self.add_weight(
            shape=(self.alignment_window, num_classes),
            initializer=keras.initializers.Constant(1.0 / num_classes),
            trainable=False,
            name="model_prior_window",
        )

    def call(self, inputs, training=None):
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            return self.classifier(inputs, training=training)
        labelled, unlabelled = inputs
        n_l, n_u = ops.shape(labelled)[0], ops.shape(unlabelled)[0]
        views = ops.concatenate(
            [
                self._augment(self.weak, labelled, training),
                self._augment(self.weak, unlabelled, training),
                self._augment(self.strong, unlabelled, training),
            ],
            axis=0,
        )
        logits = self.classifier(views, training=training)
        weak_logits = logits[n_l : n_l + n_u]
        window = ops.convert_to_tensor(self.model_prior_window)
        if self.method == "hard":
            pseudo, mask = credal.hard_pseudo_labels(weak_logits, self.threshold)
            alpha = ops.cast(mask, logits.dtype)  # carried in the same slot: the mask
        else:
            model_prior = ops.mean(window, axis=0)
            model_prior = model_prior / ops.sum(model_prior)
            data_prior = None if self.data_prior is None else ops.array(self.data_prior)
            pseudo, alpha = credal.credal_targets(weak_logits, model_prior, data_prior)
        if training:
            # The window takes this batch's mean weak-view prediction after it was used.
            batch_mean = ops.mean(ops.stop_gradient(ops.softmax(weak_logits, axis=-1)), axis=0)
            self.model_prior_window.assign(
                ops.concatenate([window[1:], ops.cast(batch_mean, window.dtype)[None]], axis=0)
            )
        return {
            "labelled": logits[:n_l],
            "strong": logits[n_l + n_u :],
            "pseudo_labels": pseudo,
            "alpha_or_mask": alpha,
        }

    @staticmethod
    def _augment(layer, x, training):
        return x if layer is None else layer(x, training=training)

    def unlabelled_loss(self, outputs):
        """``L_unlabelled`` of one step's outputs (0 for ``"supervised"``)."""
        strong, pseudo = outputs["strong"], outputs["pseudo_labels"]
        if self.method == "credal":
            per_example = sparse_label_relaxation(
                pseudo, strong, alpha=outputs["alpha_or_mask"], from_logits=True
            )
        elif self.method == "hard":
            ce = ops.sparse_categorical_crossentropy(pseudo, strong, from_logits=True)
            per_example = ops.cast(outputs["alpha_or_mask"], ce.dtype) * ce
        else:
            return ops.zeros((), dtype=strong.dtype)
        return ops.mean(per_example)

    def fit(self, x=None, *args, **kwargs):
        """``keras.Model.fit``; on ``SemiSupervisedBatches``, epoch ``e`` trains on ``draws(e)``.

        A callback sets the data set's epoch to Keras' epoch at the start of
        each epoch (``initial_epoch=e`` resumes with the draws of epoch
        ``e``), and ``shuffle`` defaults to ``False`` there, so that the steps
        come in the drawn order (``shuffle=True``: Keras permutes them within
        the epoch). Other data: exactly ``keras.Model.fit``.
        """
        if not isinstance(x, SemiSupervisedBatches):
            return super().fit(x, *args, **kwargs)
        arguments = inspect.signature(super().fit).bind(x, *args, **kwargs).arguments
        epochs_callback = _DrawEpochs(x)
        callbacks = arguments.get("callbacks")
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks.callbacks.append(epochs_callback)
            epochs_callback.set_model(self)
        else:
            arguments["callbacks"] = [*(callbacks or []), epochs_callback]
        arguments.setdefault("shuffle", False)
        return super().fit(**arguments)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, dict):
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        supervised = super().compute_loss(
            x, y, y_pred["labelled"], sample_weight, training=training
        )
        unlabelled = ops.cast(self.unlabelled_loss(y_pred), supervised.dtype)
        return supervised + self.unlabelled_weight * unlabelled

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict):
            y_pred = y_pred["labelled"]
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            "name": self.name,
            "model": serialize(self.classifier),
            "method": self.method,
            "weak": None if self.weak is None else serialize(self.weak),
            "strong": None if self.strong is None else serialize(self.strong),
            "unlabelled_weight": self.unlabelled_weight,
            "threshold": self.threshold,
            "alignment_window": self.alignment_window,
            "data_prior": self.data_prior,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("model", "weak", "strong"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return cls(**config)


class SemiSupervisedBatches(keras.utils.PyDataset):
    """``((x_labelled, x_unlabelled), y_labelled)`` batches for ``SelfTraining.fit``.

    Each step draws ``batch_size`` labelled and ``unlabelled_ratio *
    batch_size`` unlabelled examples, each set cycling through its own
    reshuffled permutations (so few labelled examples repeat often, as in
    FixMatch). The draws of epoch ``e`` are a function of ``(seed, e)``
    (``draws``): with ``rng = np.random.default_rng([seed, e])``, ``S`` steps,
    ``B`` labelled and ``U`` unlabelled examples per step, the labelled
    indices are ``rng.permutation(n_labelled)`` concatenated until ``S * B``
    and cut there, then the unlabelled ones likewise from the same ``rng``
    (``S * U`` of ``n_unlabelled``); step ``i`` takes rows ``[i B, (i + 1) B)``
    and ``[i U, (i + 1) U)`` of them.

    Which epoch the batches are drawn for is set by ``set_epoch``, never by
    Keras' ``on_epoch_end`` (Keras calls it once more per ``fit``, after
    looking ahead at a batch): ``SelfTraining.fit`` calls ``set_epoch`` with
    Keras' epoch at the start of every epoch; a loop of one's own calls it
    itself (until then: epoch 0).

    Args:
        x_labelled, y_labelled: The labelled examples and their class ids.
        x_unlabelled: The unlabelled examples.
        batch_size: Labelled examples per step (``B``).
        unlabelled_ratio: ``mu``: unlabelled examples per labelled one (7 in CSSL).
        steps_per_epoch: Steps per epoch.
        seed: Seed of the draws.
    """

    def __init__(
        self,
        x_labelled,
        y_labelled,
        x_unlabelled,
        batch_size,
        unlabelled_ratio=7,
        steps_per_epoch=100,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.x_labelled = np.asarray(x_labelled, dtype="float32")
        self.y_labelled = np.asarray(y_labelled)
        self.x_unlabelled = np.asarray(x_unlabelled, dtype="float32")
        if len(self.x_labelled) != len(self.y_labelled) or len(self.x_labelled) == 0:
            raise ValueError(
                "`x_labelled` and `y_labelled` must hold the same number (>= 1) of examples. "
                f"Received: {len(self.x_labelled)} and {len(self.y_labelled)}"
            )
        self.batch_size = int(batch_size)
        self.unlabelled_batch = int(unlabelled_ratio) * self.batch_size
        if self.unlabelled_batch > len(self.x_unlabelled):
            raise ValueError(
                f"An unlabelled batch of {self.unlabelled_batch} (`unlabelled_ratio` x "
                f"`batch_size`) needs as many unlabelled examples. Received: "
                f"{len(self.x_unlabelled)}"
            )
        self.steps_per_epoch = int(steps_per_epoch)
        self.seed = seed
        #: The epoch whose draws ``__getitem__`` serves (``set_epoch``).
        self.epoch = None
        self.set_epoch(0)

    def draws(self, epoch):
        """``(labelled, unlabelled)`` indices of all steps of ``epoch``, in step order."""
        rng = np.random.default_rng([self.seed, epoch])
        steps = self.steps_per_epoch
        labelled = _cycled(rng, len(self.x_labelled), steps * self.batch_size)
        unlabelled = _cycled(rng, len(self.x_unlabelled), steps * self.unlabelled_batch)
        return labelled, unlabelled

    def set_epoch(self, epoch):
        """Serve the draws of ``epoch`` (a non-negative integer) from now on."""
        epoch = _validation.check_integer(epoch, "epoch", 0)
        if epoch != self.epoch:
            self._labelled, self._unlabelled = self.draws(epoch)
            self.epoch = epoch

    def __len__(self):
        return self.steps_per_epoch

    def __getitem__(self, index):
        b, u = self.batch_size, self.unlabelled_batch
        labelled = self._labelled[index * b : (index + 1) * b]
        unlabelled = self._unlabelled[index * u : (index + 1) * u]
        x = (self.x_labelled[labelled], self.x_unlabelled[unlabelled])
        return x, self.y_labelled[labelled]


class _DrawEpochs(keras.callbacks.Callback):
    """Sets a ``SemiSupervisedBatches``' epoch to Keras' at the start of every epoch."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


def _cycled(rng, n, count):
    """``count`` indices: concatenated random permutations of ``range(n)``."""
    return np.concatenate([rng.permutation(n) for _ in range(-(-count // n))])[:count]
