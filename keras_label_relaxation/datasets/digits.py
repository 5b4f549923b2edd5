"""scikit-learn's bundled handwritten digits: real data that needs no network."""

import numpy as np


def load_digits():
    """Load the 1,797 8x8 digits bundled with scikit-learn.

    Returns:
        ``(x, y)``: images of shape ``(1797, 8, 8, 1)``, float32 in [0, 1]
        (the raw 0..16 intensities divided by 16), and int64 labels 0..9.

    Example:
    >>> x, y = load_digits()
    >>> x.shape, y.shape, float(x.max())
    ((1797, 8, 8, 1), (1797,), 1.0)
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    return x, bunch.target.astype(np.int64)
