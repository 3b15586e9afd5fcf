"""The U-Net: its shapes (same and valid convolutions), overlap-tile inference, inputs.

Random tiny networks (depth 2-3, width 4): what is tested is the plumbing, which must
be exact (tiled inference equals one pass over the whole mirror-padded image).
"""

import numpy as np
import pytest
import torch

from napari_samphase.core.errors import InputError
from napari_samphase.core.progress import Cancelled
from napari_samphase.core.unet.config import UNetConfig, check_unet_config
from napari_samphase.core.unet.inference import predict_labels, predict_tiled
from napari_samphase.core.unet.inputs import image_channels, model_input
from napari_samphase.core.unet.model import UNet


@pytest.fixture(scope="module", autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    model = UNet(UNetConfig(**{"width": 4, "depth": 2, "classes": 3, **kw}))
    # BatchNorm with non-trivial running statistics, so eval mode is really exercised
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        model.head.weight *= 30  # confident outputs: a wrong pixel would show
    return model.eval()


@pytest.mark.parametrize("depth", [2, 3])
def test_valid_shapes_match_the_network(depth):
    config = UNetConfig(width=4, depth=depth, padding="valid", classes=2)
    model = _net(depth=depth, padding="valid", classes=2)
    assert config.margin == 6 * 2 ** (depth - 1) - 4  # 92 for the original depth 5
    assert UNetConfig(depth=5, padding="valid").output_shape((572, 572)) == (388, 388)
    checked = 0
    for size in range(config.margin * 2 - 4, config.margin * 2 + 3 * config.factor + 1):
        try:
            out = config.output_shape((size, size + config.factor))
        except InputError:
            continue
        with torch.no_grad():
            y = model(torch.zeros(1, 1, size, size + config.factor))
        assert tuple(y.shape) == (1, 2, *out)
        assert out == (size - 2 * config.margin, size + config.factor - 2 * config.margin)
        checked += 1
    assert checked >= 2
    # the smallest valid input at least as large as asked for
    for size in range(1, 60):
        v = config.valid_input(size)
        assert v >= size and config.output_shape((v, v))[0] > 0
        assert all(not _is_valid(config, s) for s in range(size, v))
    with pytest.raises(InputError, match="valid"):
        config.output_shape((config.valid_input(50) + 1,) * 2)


def _is_valid(config, size):
    try:
        config.output_shape((size, size))
    except InputError:
        return False
    return True


def test_same_padding_keeps_any_size_and_rgb_input():
    model = _net(depth=3, in_channels=3, classes=4)
    for shape in [(17, 23), (32, 32), (9, 40)]:
        with torch.no_grad():
            y = model(torch.rand(2, 3, *shape))
        assert tuple(y.shape) == (2, 4, *shape)


def test_bad_configs_are_input_errors():
    for bad in [
        {"in_channels": 2},
        {"classes": 1},
        {"depth": 0},
        {"width": 0},
        {"padding": "full"},
        {"dropout": 1.0},
    ]:
        with pytest.raises(InputError):
            check_unet_config(UNetConfig(**bad))


def _whole(model, x):
    """One forward pass over the whole image, mirror-padded by the model's context
    (and up to a size the network takes): the reference tiled inference must equal."""
    c = model.config
    m = model.context
    h, w = x.shape[1:]
    if c.padding == "valid":
        ph, pw = c.valid_input(h + 2 * m) - h - m, c.valid_input(w + 2 * m) - w - m
    else:
        f = c.factor
        ph, pw = -(-(h + 2 * m) // f) * f - h - m, -(-(w + 2 * m) // f) * f - w - m
    padded = np.pad(x, ((0, 0), (m, ph), (m, pw)), mode="reflect")
    with torch.no_grad():
        y = model(torch.from_numpy(padded)[None]).softmax(1)[0].numpy()
    off = 0 if c.padding == "valid" else m
    return y[:, off : off + h, off : off + w]


@pytest.mark.parametrize(
    ("padding", "depth", "overlap"),
    [("same", 2, 0), ("same", 3, 8), ("valid", 2, 0), ("valid", 3, 4)],
)
def test_tiled_inference_equals_whole_image_inference(padding, depth, overlap):
    model = _net(seed=depth, padding=padding, depth=depth)
    rng = np.random.default_rng(0)
    x = rng.random((1, 75, 101), dtype=np.float32)  # not a multiple of any tile
    seen = []
    tile = 2 * model.context + 3 * model.config.factor + 5
    probs = predict_tiled(
        model, x, tile=tile, overlap=overlap, batch=3, progress=lambda d, t, m: seen.append(t)
    )
    assert probs.shape == (3, 75, 101) and probs.dtype == np.float32
    assert seen[-1] > 4  # many tiles
    np.testing.assert_allclose(probs, _whole(model, x), atol=1e-6)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    # a single tile (the whole image fits in it) gives the same
    one = predict_tiled(model, x, tile=512)
    np.testing.assert_allclose(one, probs, atol=1e-6)


def test_a_smaller_margin_changes_the_result_and_overlap_averages():
    """The exact context is what makes tiles agree: with less, seams appear (so the
    test above can fail), and overlapping tiles average them."""
    model = _net(seed=1, depth=3)
    x = np.random.default_rng(1).random((1, 64, 64), dtype=np.float32)
    exact = predict_tiled(model, x, tile=80)
    short = predict_tiled(model, x, tile=40, margin=4)
    assert np.abs(short - exact).max() > 1e-4  # 100 x the tolerance above
    with pytest.raises(InputError, match="margin"):
        predict_tiled(model, x, tile=80, margin=3)  # not a multiple of the pooling factor


def test_image_smaller_than_the_network_input_and_gray_2d():
    model = _net(padding="valid", depth=2, classes=2)
    x = np.random.default_rng(2).random((9, 13), dtype=np.float32)  # 2D: one channel
    probs = predict_tiled(model, x, tile=256)
    assert probs.shape == (2, 9, 13)
    np.testing.assert_allclose(probs, _whole(model, x[None]), atol=1e-6)


def test_tiles_go_through_the_network_in_batches_of_at_most_batch():
    model = _net(depth=2)
    sizes = []
    model.register_forward_pre_hook(lambda mod, args: sizes.append(args[0].shape[0]))
    x = np.random.default_rng(3).random((1, 90, 90), dtype=np.float32)
    predict_tiled(model, x, tile=48, batch=2)
    assert max(sizes) == 2 and len(sizes) > 3


def test_cancel_via_progress():
    model = _net(depth=2)
    x = np.zeros((1, 90, 90), np.float32)
    calls = []

    def progress(done, total, message):
        calls.append(done)
        if done >= 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        predict_tiled(model, x, tile=40, batch=1, progress=progress)
    assert calls[-1] == 2


def test_predict_labels_maps_argmax_to_the_class_values():
    model = _net(seed=2, depth=2, classes=3)
    x = np.zeros((1, 40, 50), np.float32)  # quadrants: outputs that differ
    x[:, :, 25:] = 1
    x[:, 20:] *= 4
    x[:, 20:, :25] = -3
    classes = np.array([0, 128, 255])
    labels = predict_labels(model, x, classes, tile=64)
    probs = predict_tiled(model, x, tile=64)
    assert labels.shape == (40, 50)
    np.testing.assert_array_equal(labels, classes[probs.argmax(0)])
    assert len(np.unique(labels)) > 1


def test_model_input_normalises_by_percentiles_and_converts_channels():
    rng = np.random.default_rng(5)
    gray = (rng.random((40, 50)) * 4000 + 1000).astype(np.uint16)
    x = model_input(gray, 1)
    assert x.shape == (1, 40, 50) and x.dtype == np.float32
    lo, hi = np.percentile(gray, [1, 99.8])
    np.testing.assert_allclose(x[0], np.clip((gray - lo) / (hi - lo), 0, 1), atol=1e-5)
    assert image_channels(gray) == 1
    rgb = np.stack([gray, gray // 2, gray // 3], -1)
    assert image_channels(rgb) == 3
    assert image_channels(np.stack([gray] * 3, -1)) == 1  # gray stored as RGB
    assert model_input(rgb, 3).shape == (3, 40, 50)
    assert model_input(gray, 3).shape == (3, 40, 50)
    as_gray = model_input(rgb, 1)
    assert as_gray.shape == (1, 40, 50)
    assert np.corrcoef(as_gray.ravel(), x.ravel())[0, 1] > 0.99
    np.testing.assert_array_equal(model_input(np.full((20, 20), 7.0), 1), 0.0)  # flat image
