"""The IDX format of the MNIST and Fashion-MNIST distributions (gzip-compressed or not)."""

import gzip
import os

import numpy as np

# The third byte of the magic number: the element type (big-endian on disk).
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: File names of the official distributions, per split: (images, labels).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path):
    """Read one IDX file (gzip-compressed or not) into a NumPy array.

    The header is two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions,
    and one big-endian uint32 per dimension; the data follow big-endian.
    Compression is recognised by content (the gzip magic), not by file name.

    Args:
        path: Path of the file.

    Returns:
        An array of the declared dtype (native byte order) and shape.

    Raises:
        ValueError: naming the file, for a wrong magic number, an unknown type,
            truncated data or trailing bytes.

    Example:
    >>> import gzip, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> with gzip.open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: corrupt gzip data ({error})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; expected "
            "00 00 <type> <ndim> with type one of 08 09 0b 0c 0d 0e)"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    available = len(raw) - header
    if available != expected:
        kind = "truncated" if available < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX data {kind}: shape {shape} needs {expected} bytes, found {available}"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def load_idx_directory(directory):
    """Read the splits of an MNIST-style IDX directory.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each ``.gz`` or
    not) and returns every split whose two files are present.

    Args:
        directory: The directory.

    Returns:
        ``{"train": (images, labels), "test": (images, labels)}`` with the
        splits found; images ``(N, rows, cols)`` uint8, labels ``(N,)`` uint8.

    Raises:
        ValueError: for no split found, a split with only one of its files, or
            image and label counts that differ (naming the files).
    """
    splits = {}
    for split, (image_stem, label_stem) in IDX_FILES.items():
        images, labels = _find(directory, image_stem), _find(directory, label_stem)
        if images is None and labels is None:
            continue
        if images is None or labels is None:
            missing = image_stem if images is None else label_stem
            raise ValueError(f"{directory}: the {split} split lacks {missing}[.gz]")
        x, y = read_idx(images), read_idx(labels)
        if len(x) != len(y):
            raise ValueError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
        splits[split] = (x, y)
    if not splits:
        raise ValueError(
            f"{directory}: no IDX split found (expected {', '.join(sum(IDX_FILES.values(), ()))}"
            ", each optionally .gz)"
        )
    return splits
