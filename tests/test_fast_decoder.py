"""The fast decoder equals segment-anything's own decoder (random weights suffice:
the rewrite is exact algebra, whatever the weight values)."""

import numpy as np
import pytest
import torch

from napari_samphase.core.sam.architectures import build_demo_sam
from napari_samphase.core.sam.session import SamSession


@pytest.fixture(scope="module")
def random_session(micrograph):
    torch.manual_seed(0)
    session = SamSession(build_demo_sam(), precision="fp32")  # exact comparison
    session.set_image(micrograph.image)
    return session


def _stock(session, coords, labels, multimask=True):
    from segment_anything import SamPredictor

    pred = SamPredictor(session.sam)
    pred.set_image(session.image)
    with torch.inference_mode():
        return pred.predict_torch(coords, labels, multimask_output=multimask, return_logits=True)


@pytest.mark.parametrize("n_points", [1, 3])
def test_transformer_and_upscaling_match_stock(random_session, n_points):
    s = random_session
    rng = np.random.default_rng(n_points)
    pts = rng.uniform(0, 250, size=(5, n_points, 2))
    labels = torch.as_tensor(rng.integers(0, 2, size=(5, n_points)))
    coords = torch.as_tensor(s.to_model_coords(pts), dtype=torch.float32)
    _, iou_ref, low_ref = _stock(s, coords, labels)
    iou, hyper, keys = s.decoder.transformer(s.decoder.sparse(coords, labels))
    low = s.decoder.upscale(keys, hyper[:, 1:])
    assert torch.allclose(iou[:, 1:], iou_ref, atol=1e-5)
    assert torch.allclose(low, low_ref, atol=1e-4 * float(low_ref.abs().max()) + 1e-6)


def test_embedding_is_computed_once_per_image(random_session, micrograph, monkeypatch):
    s = random_session
    calls = []
    monkeypatch.setattr(s.sam.image_encoder, "forward", lambda *a, **k: calls.append(1) or None)
    s.set_image(micrograph.image)  # same image: cached
    s.set_image(micrograph.image.copy())  # equal content: still cached
    assert calls == []


def test_embedding_progress_can_cancel(micrograph):
    from napari_samphase.core.progress import Cancelled, CancelToken, with_cancel

    s = SamSession(build_demo_sam())
    token = CancelToken()
    seen = []

    def progress(done, total, msg):
        seen.append(done)
        if done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        s.set_image(micrograph.image, progress=with_cancel(progress, token))
    assert seen == [1, 2]
    assert s.embedding is None  # a cancelled embedding is not kept


def test_bf16_encoder_stays_close_to_fp32(micrograph):
    torch.manual_seed(0)
    sam = build_demo_sam()
    a, b = SamSession(sam, precision="fp32"), SamSession(sam, precision="bf16")
    a.set_image(micrograph.image)
    b.set_image(micrograph.image)
    err = (a.embedding - b.embedding).abs().max() / a.embedding.abs().max()
    assert 0 < err < 0.05  # bf16 really ran, and stayed close


def test_predict_rejects_bad_points(random_session):
    from napari_samphase.core.errors import InputError

    with pytest.raises(InputError, match="outside"):
        random_session.predict([[1000, 5]])
    with pytest.raises(InputError, match="at least one"):
        random_session.predict(np.zeros((0, 2)))
    with pytest.raises(InputError, match="one label per point"):
        random_session.predict([[5, 5]], [1, 0])
    fresh = SamSession(random_session.sam)
    with pytest.raises(InputError, match="no image"):
        fresh.predict([[5, 5]])


@pytest.mark.parametrize("shape", [(256, 160), (160, 256), (200, 200), (300, 500)])
def test_upsampling_equals_segment_anythings_postprocess(shape):
    """Image-size logits of a click are SAM's ``postprocess_masks`` (padding cropped at
    the right depth for every orientation)."""
    from napari_samphase.core.sam.fast_decoder import LogitFrame

    torch.manual_seed(1)
    sam = build_demo_sam()
    input_size = SamSession(sam).transform.get_preprocess_shape(*shape, 256)
    frame = LogitFrame((64, 64), 256, input_size, shape)
    low = torch.randn(2, 3, 64, 64) * 4
    with torch.inference_mode():
        ref = sam.postprocess_masks(low, input_size, shape)
    assert torch.allclose(frame.upsample(low), ref, atol=1e-5)
    # what the padding crop keeps is exactly what the unpadded frame reads
    padded = low.clone()
    padded[..., frame.crop[0] :, :] = 1e6
    padded[..., :, frame.crop[1] :] = 1e6
    with torch.inference_mode():
        assert torch.allclose(sam.postprocess_masks(padded, input_size, shape), ref, atol=1e-5)


def test_embedding_key_covers_model_checkpoint_and_precision(micrograph, monkeypatch, tmp_path):
    from napari_samphase.core.sam.loading import save_checkpoint

    torch.manual_seed(0)
    sam = build_demo_sam()
    s = SamSession(sam, "demo-synthetic", precision="fp32", checkpoint_id="a.pth#1")
    image = micrograph.image
    assert not s.has_embedding_for(image)
    s.set_image(image)
    assert s.has_embedding_for(image) and s.has_embedding_for(image.copy())
    assert not s.has_embedding_for(image[::-1])
    calls = []
    forward = s.sam.image_encoder.forward
    monkeypatch.setattr(
        s.sam.image_encoder, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k)
    )
    s.set_image(image)
    assert calls == []
    s.precision = "bf16"  # another precision: another embedding
    assert not s.has_embedding_for(image)
    s.set_image(image)
    assert calls == [1]
    s.checkpoint_id = "b.pth#2"  # other weights behind the same module
    assert not s.has_embedding_for(image)
    s.set_image(image)
    assert calls == [1, 1]
    # sessions from two checkpoint files differ; one file loaded twice does not
    save_checkpoint(sam, tmp_path / "one.pth", "demo-synthetic")
    save_checkpoint(sam, tmp_path / "two.pth", "demo-synthetic", note="other file")
    one, one_again, two = (
        SamSession.from_name("demo-synthetic", tmp_path / n, device="cpu", precision="fp32")
        for n in ("one.pth", "one.pth", "two.pth")
    )
    assert one.embedding_key(image) == one_again.embedding_key(image)
    assert one.embedding_key(image) != two.embedding_key(image)
    assert one.embedding_key(image) != s.embedding_key(image)
