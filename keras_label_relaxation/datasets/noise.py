"""Seeded label noise for training on wrong labels (the test labels stay clean).

Two kinds, as in the label-noise literature and in "Mitigating Label Noise
through Data Ambiguation" (Lienen & Huellermeier, AAAI 2024; the authors' code
julilien/MitigatingLabelNoiseDataAmbiguation at 4903ae6, ``datasets.py``
L319-357 and ``dataset_utils.py`` L85-174):

- ``symmetric:r``: each label is replaced, with probability ``r``, by a class
  drawn uniformly from all ``K`` classes, the true one included (the authors'
  definition, their supplement A.2: "also correct label can be chosen
  again"); so a share of about ``r (K - 1) / K`` of the labels changes.
- ``asymmetric:r``: the classes of a fixed pattern flip to a similar class:
  of the examples of each source class, exactly ``ceil(r * n_c)``, chosen at
  random, get the target class (the authors' CIFAR-10 code). Patterns
  (``ASYMMETRIC_PATTERNS``): CIFAR-10 truck -> automobile, bird -> airplane,
  deer -> horse, cat <-> dog (the authors'); MNIST and the digits 2 -> 7,
  3 -> 8, 5 <-> 6, 7 -> 1 (Patrini et al., CVPR 2017); CIFAR-100 each class
  to the next within its block of five consecutive class ids, circularly
  (Patrini et al.'s pattern; the authors' CIFAR-100 code instead swaps two
  random classes per block). Other data sets have no pattern and are refused.

The draw is a function of the seed alone (NumPy's ``default_rng`` on
``[seed, NOISE_STREAM]``), independent of the resampling's generator.
"""

import dataclasses
import hashlib
import math

import numpy as np

#: Mixed into the noise generator's seed so its stream differs from the resampling's.
NOISE_STREAM = 0x6E6F6973
NOISE_KINDS = ("symmetric", "asymmetric")

_DIGIT_FLIPS = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
#: ``{data set: {source class: target class}}`` of ``asymmetric`` noise.
ASYMMETRIC_PATTERNS = {
    "mnist": _DIGIT_FLIPS,
    "digits": _DIGIT_FLIPS,
    "cifar10": {9: 1, 2: 0, 4: 7, 3: 5, 5: 3},
    "cifar100": {c: 5 * (c // 5) + (c % 5 + 1) % 5 for c in range(100)},
}


def _pattern_key(dataset):
    """The pattern of ``dataset`` (an IDX directory named ``mnist*`` counts as MNIST)."""
    name = str(dataset or "").lower()
    if name.startswith("mnist"):
        return "mnist"
    return name if name in ASYMMETRIC_PATTERNS else None


@dataclasses.dataclass(frozen=True)
class LabelNoise:
    """A kind of label noise and its rate; ``str`` gives the ``"kind:rate"`` spelling.

    Example:
    >>> noise = LabelNoise.parse("symmetric:0.4")
    >>> noise, str(noise)
    (LabelNoise(kind='symmetric', rate=0.4), 'symmetric:0.4')
    """

    kind: str
    rate: float

    def __post_init__(self):
        if self.kind not in NOISE_KINDS:
            raise ValueError(
                f"Invalid label noise kind. Expected one of {NOISE_KINDS}. "
                f"Received: kind={self.kind!r}"
            )
        rate = self.rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(
                "Invalid value for the label noise rate. Expected a number in [0, 1). "
                f"Received: rate={rate!r}"
            )
        object.__setattr__(self, "rate", float(rate))

    @classmethod
    def parse(cls, spec):
        """``"symmetric:0.4"`` or ``"asymmetric:0.4"`` as a ``LabelNoise``."""
        if isinstance(spec, LabelNoise):
            return spec
        kind, sep, rate = str(spec).partition(":")
        try:
            value = float(rate)
        except ValueError:
            value = None
        if not sep or value is None or not math.isfinite(value):
            raise ValueError(
                "Invalid value for argument `label_noise`. Expected 'symmetric:RATE' or "
                f"'asymmetric:RATE' with RATE in [0, 1). Received: label_noise={spec!r}"
            )
        return cls(kind, value)

    def __str__(self):
        return f"{self.kind}:{self.rate:g}"


def corrupt_labels(labels, num_classes, noise, seed, dataset=None):
    """Labels with ``noise`` applied, drawn from ``seed`` (see the module docstring).

    Args:
        labels: Integer class ids, shape ``(N,)``.
        num_classes: ``K``.
        noise: A ``LabelNoise`` or its spelling, ``"symmetric:0.4"``.
        seed: Integer seed; the same seed gives the same noisy labels.
        dataset: The data set's name, for the pattern of ``asymmetric`` noise.

    Returns:
        The noisy labels, int64 ``(N,)`` (the input is not changed).

    Raises:
        ValueError: naming the noise spelling, a rate outside [0, 1), or a
            data set without an asymmetric pattern.

    Example:
    >>> y = np.repeat(np.arange(10), 100)
    >>> noisy = corrupt_labels(y, 10, "symmetric:0.4", seed=0)
    >>> round(float(np.mean(noisy != y)), 2)  # about 0.4 * 9 / 10
    0.35
    >>> noisy = corrupt_labels(y, 10, "asymmetric:0.4", seed=0, dataset="mnist")
    >>> int(np.sum((y == 7) & (noisy == 1))), int(np.sum(noisy != y))
    (40, 200)
    """
    noise = LabelNoise.parse(noise)
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng([int(seed), NOISE_STREAM])
    noisy = labels.copy()
    if noise.kind == "symmetric":
        flip = rng.random(len(labels)) < noise.rate
        noisy[flip] = rng.integers(0, num_classes, int(flip.sum()))
        return noisy
    key = _pattern_key(dataset)
    if key is None:
        raise ValueError(
            f"Asymmetric label noise has no class pattern for data set {dataset!r}. Data sets "
            f"with one: {', '.join(ASYMMETRIC_PATTERNS)} (and IDX directories named mnist*); "
            "use 'symmetric:RATE' for others."
        )
    for source, target in sorted(ASYMMETRIC_PATTERNS[key].items()):
        members = np.flatnonzero(labels == source)
        chosen = rng.permutation(members)[: math.ceil(noise.rate * len(members))]
        noisy[chosen] = target
    return noisy


def noise_record(clean, noisy):
    """What a run records of a noise draw: the share of changed labels and a digest.

    Example:
    >>> noise_record(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0]))["changed"]
    0.25
    """
    noisy = np.ascontiguousarray(np.asarray(noisy, dtype=np.int64))
    return {
        "changed": float(np.mean(np.asarray(clean) != noisy)) if len(noisy) else 0.0,
        "digest": hashlib.sha256(noisy.tobytes()).hexdigest()[:16],
    }
