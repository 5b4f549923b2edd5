"""The runner under MirroredStrategy (2 logical CPUs) with data sets smaller than a batch.

Keras' fit/evaluate under ``MirroredStrategy`` fail when the first batch does not split
evenly over the replicas. The runner's hold-out here has 17 examples (odd, fewer than the
global batch of 64), so without ``replica_batch_size`` its searches would fail; with it the
whole protocol (search, retraining, temperature scaling) runs.
"""

import keras
import pytest

from tests.conftest import run_on_two_devices

SCRIPT = """
    import tempfile

    from keras_label_relaxation.experiments import compare
    from keras_label_relaxation.tuning import replica_batch_size

    xd, yd = klr.datasets.load_digits()
    data = klr.datasets.from_arrays("digits", xd[:101], yd[:101], xd[101:151], yd[101:151])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        results = compare(
            lambda shape, classes: klr.models.simple_dense(shape, classes), data,
            losses=["ce", "lr"], grids={"lr": [0.05, 0.1]}, epochs=1, batch_size=64,
            out_dir=tempfile.mkdtemp(), progress=lambda *a: None)
        sizes = [replica_batch_size(64, n) for n in (1000, 64, 17, 2)]
        try:
            replica_batch_size(63, 1000)
            error = None
        except ValueError as e:
            error = str(e)
    rows = [{k: v for k, v in row.items() if isinstance(v, (int, float, str))}
            for row in results.summary]
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "rows": rows,
                      "sizes": sizes, "error": error, "outside": replica_batch_size(63, 17)}))
    """


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute test")
def test_runner_under_mirrored_strategy_with_tiny_splits():
    values = run_on_two_devices("tensorflow", SCRIPT, timeout=600)
    assert values["replicas"] == 2
    assert len(values["rows"]) == 3  # CE, LR, CE + temperature scaling
    assert values["sizes"] == [64, 64, 16, 2]
    assert "batch_size=63" in values["error"] and "2 replicas" in values["error"]
    assert values["outside"] == 63  # no strategy: unchanged
