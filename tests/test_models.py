"""The paper's architectures: parameter counts (independent arithmetic), shapes, dtypes."""

import keras
import numpy as np
import pytest

from keras_label_relaxation.models import (
    MODEL_NAMES,
    densenet_bc,
    get_model,
    resnet56_v2,
    resnet_v2,
    simple_dense,
    vgg16,
)


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _conv(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def test_simple_dense_parameter_count():
    # 784*1024+1024 + 1024*1024+1024 + 1024*10+10, the paper's 2x1024 network.
    assert simple_dense((28, 28, 1), 10).count_params() == 1_863_690


def test_vgg16_parameter_count():
    plan = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    channels, total = 3, 0
    for filters in plan:
        total += _conv(3, channels, filters) + 4 * filters  # conv + BatchNorm (4 per channel)
        channels = filters
    total += 512 * 512 + 512 + 4 * 512 + 512 * 10 + 10  # 1x1x512 after five pools
    assert vgg16((32, 32, 3), 10).count_params() == total == 15_001_418


def test_resnet56_v2_parameter_count():
    total = _conv(3, 3, 16) + 4 * 16  # stem
    f_in = 16
    for stage in range(3):
        f_out = f_in * (4 if stage == 0 else 2)
        for block in range(6):
            c = f_in if block == 0 else f_out
            total += 0 if (block == 0 and stage == 0) else 4 * c  # pre-activation BN
            total += _conv(1, c, f_in) + 4 * f_in + _conv(3, f_in, f_in) + 4 * f_in
            total += _conv(1, f_in, f_out)
            if block == 0:
                total += _conv(1, f_in, f_out)  # projection shortcut
        f_in = f_out
    total += 4 * 256 + 256 * 10 + 10
    assert resnet56_v2((32, 32, 3), 10).count_params() == total == 1_673_738


def test_densenet_bc_100_12_parameter_count_matches_the_paper():
    k, channels = 12, 24
    trainable = _conv(3, 3, 24, bias=False)
    for block in range(3):
        for _ in range(16):
            trainable += 2 * channels + _conv(1, channels, 4 * k, False)
            trainable += 2 * 4 * k + _conv(3, 4 * k, k, False)
            channels += k
        if block < 2:
            trainable += 2 * channels + _conv(1, channels, channels // 2, False)
            channels //= 2
    trainable += 2 * channels + channels * 10 + 10
    model = densenet_bc((32, 32, 3), 10)
    assert _trainable(model) == trainable == 769_162  # Huang et al.: 0.8M
    assert abs(_trainable(model) - 0.8e6) < 0.05e6


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)], ids=["28x28x1", "32x32x3"])
def test_forward_shapes_and_logits(name, shape):
    model = get_model(name, shape, 10)
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype("float32")
    logits = np.asarray(model(x, training=False))
    assert logits.shape == (2, 10) and np.isfinite(logits).all()
    probs = np.asarray(get_model(name, shape, 7, final_activation="softmax")(x, training=False))
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_stays_float32_under_mixed_precision(restore_policy, name):
    keras.config.set_dtype_policy("mixed_float16")
    model = get_model(name, (32, 32, 3), 10)
    hidden = [layer for layer in model.layers if layer.name != "output" and layer.weights]
    assert hidden and hidden[0].compute_dtype == "float16"
    out = model(np.zeros((1, 32, 32, 3), "float32"), training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_bad_names_and_depths():
    with pytest.raises(ValueError, match=r"Unknown model name: 'resnet50'.*simple_dense.*vgg16"):
        get_model("resnet50", (32, 32, 3), 10)
    with pytest.raises(ValueError, match="`depth`"):
        resnet_v2((32, 32, 3), 10, depth=50)
    with pytest.raises(ValueError, match="`depth`"):
        densenet_bc((32, 32, 3), 10, depth=99)
    with pytest.raises(ValueError, match="`compression`"):
        densenet_bc((32, 32, 3), 10, compression=0.0)
