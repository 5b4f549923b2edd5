import numpy as np

from keras_label_relaxation.models import simple_dense


def test_simple_dense_parameter_count():
    # 784*1024+1024 + 1024*1024+1024 + 1024*10+10, the paper's 2x1024 network.
    assert simple_dense((28, 28, 1), 10).count_params() == 1_863_690


def test_simple_dense_outputs_logits_or_softmax():
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 1)).astype("float32")
    logits = np.asarray(simple_dense((8, 8, 1), 10)(x))
    assert logits.shape == (3, 10) and not np.allclose(logits.sum(-1), 1.0)
    probs = np.asarray(simple_dense((8, 8, 1), 10, final_activation="softmax")(x))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
