"""Every loss round-trips through get_config and a .keras file loaded with safe_mode=True."""

import keras
import numpy as np
import pytest

import keras_label_relaxation as klr

LOSSES = [
    (klr.LabelRelaxation(alpha=0.2, from_logits=True), False),
    (klr.SparseLabelRelaxation(alpha=0.05, from_logits=True, reduction="sum"), True),
    (klr.BinaryLabelRelaxation(alpha=0.1, from_logits=True), None),
    (klr.SparseLabelSmoothing(alpha=0.1, from_logits=True), True),
    (klr.ConfidencePenalty(beta=0.5, from_logits=True), False),
    (klr.SparseConfidencePenalty(beta=2.0, from_logits=True), True),
    (klr.SparseCategoricalFocalCrossentropy(alpha=1.0, gamma=3.5, from_logits=True), True),
]


def _targets(rng, sparse, n=8, k=4):
    labels = rng.integers(0, k, n)
    if sparse is None:
        return rng.integers(0, 2, (n, k)).astype("float32")
    return labels if sparse else np.eye(k, dtype="float32")[labels]


@pytest.mark.parametrize(("loss", "sparse"), LOSSES, ids=lambda x: type(x).__name__)
def test_config_round_trip(rng, loss, sparse):
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    clone = type(loss).from_config(loss.get_config())
    logits = rng.standard_normal((8, 4)).astype("float32")
    y = _targets(rng, sparse)
    assert float(clone(y, logits)) == float(loss(y, logits))


@pytest.mark.parametrize(("loss", "sparse"), LOSSES, ids=lambda x: type(x).__name__)
def test_keras_file_round_trip_with_safe_mode(rng, tmp_path, loss, sparse):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile(optimizer="sgd", loss=loss)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    x = rng.standard_normal((8, 3)).astype("float32")
    y = _targets(rng, sparse)
    np.testing.assert_allclose(
        loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6
    )
