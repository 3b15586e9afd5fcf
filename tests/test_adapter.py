"""The learned gray -> RGB input adapter and the checkpoint fields that carry it."""

import copy

import numpy as np
import pytest

from napari_samphase.core.errors import CheckpointError, InputError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def demo_sam():
    """A fresh copy of the bundled demo model per use (tests attach adapters to it)."""
    from napari_samphase.core.sam.loading import load_model

    torch.set_num_threads(2)
    sam = load_model("demo-synthetic", device="cpu").sam
    return lambda: copy.deepcopy(sam)


def _gray_input(seed=0, size=(256, 192)):
    """A random gray image stacked into SAM's B x 3 x h x w float input (not integers)."""
    g = torch.rand((1, 1, *size), generator=torch.Generator().manual_seed(seed)) * 255
    return g, g.expand(-1, 3, -1, -1).contiguous()


def _perturb(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def test_import_is_cheap_and_registry_lists_kinds():
    import subprocess
    import sys

    code = (
        "import sys, napari_samphase.core.sam.adapter as a; "
        "assert 'torch' not in sys.modules, 'torch imported'; print(sorted(a.ADAPTERS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['gray', 'none']"


def test_adapter_at_step_zero_is_channel_stacking_exactly(demo_sam):
    from napari_samphase.core.sam.adapter import adapter_name, attach_adapter, encoder_input

    plain = demo_sam()
    sam = attach_adapter(demo_sam(), "gray")
    assert adapter_name(plain) == "none" and adapter_name(sam) == "gray"
    _, x = _gray_input()
    with torch.no_grad():
        got = encoder_input(sam, x)
        assert torch.equal(got, sam.preprocess(x))
        assert torch.equal(encoder_input(plain, x), plain.preprocess(x))
        # the adapter's own output is the gray value in all three channels
        gray = x[:, :1]
        assert torch.equal(sam.input_adapter(gray), x)
        # colour input: the adapter sees the luma of it
        from napari_samphase.core.image.convert import LUMA

        rgb = torch.rand((1, 3, 64, 80), generator=torch.Generator().manual_seed(1)) * 255
        luma = (rgb * torch.from_numpy(LUMA)[:, None, None]).sum(1, keepdim=True)
        want = sam.preprocess(luma.expand(-1, 3, -1, -1))
        assert torch.allclose(encoder_input(sam, rgb), want, atol=1e-4)
        assert not torch.allclose(encoder_input(sam, rgb), sam.preprocess(rgb), atol=1e-2)


def test_session_embedding_with_fresh_adapter_equals_without(demo_sam, micrograph):
    from napari_samphase.core.sam.adapter import attach_adapter
    from napari_samphase.core.sam.session import SamSession

    a = SamSession(demo_sam(), "demo-synthetic", precision="fp32")
    b = SamSession(attach_adapter(demo_sam(), "gray"), "demo-synthetic", precision="fp32")
    a.set_image(micrograph.image)
    b.set_image(micrograph.image)
    assert torch.equal(a.embedding, b.embedding)
    # ... and a changed adapter changes the embedding (the session uses it)
    _perturb(b.sam.input_adapter)
    c = SamSession(b.sam, "demo-synthetic", precision="fp32")
    c.set_image(micrograph.image)
    assert not torch.allclose(a.embedding, c.embedding, atol=1e-3)


def test_every_adapter_weight_can_learn(demo_sam):
    from napari_samphase.core.sam.adapter import attach_adapter, encoder_input

    sam = attach_adapter(demo_sam(), "gray")
    adapter = sam.input_adapter
    params = dict(adapter.named_parameters())
    assert len(params) >= 4 and all(p.requires_grad for p in params.values())
    _, x = _gray_input(seed=2, size=(128, 96))
    target = torch.randn(sam.image_encoder(sam.preprocess(x)).shape)

    def backward():
        adapter.zero_grad()
        emb = sam.image_encoder(encoder_input(sam, x))
        ((emb - target) ** 2).mean().backward()

    backward()
    for name, p in params.items():  # every parameter tensor learns from step 0
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with torch.no_grad():
        for p in params.values():
            p.sub_(1e-3 * p.grad.sign())
    backward()
    for name, p in params.items():  # after one step, every single weight does
        assert (p.grad != 0).all(), name


def test_weights_hash_covers_names_dtypes_shapes_and_values():
    from napari_samphase.core.sam.loading import weights_sha256

    a = {"w": torch.arange(6, dtype=torch.float32), "b": torch.zeros(2, dtype=torch.bfloat16)}
    h = weights_sha256(a)
    assert len(h) == 64 and h == weights_sha256(dict(reversed(list(a.items()))))
    variants = [
        {**a, "w": a["w"].reshape(2, 3)},
        {**a, "w": a["w"].double()},
        {"v": a["w"], "b": a["b"]},
        {**a, "w": a["w"] + torch.tensor([0, 0, 0, 0, 0, 1e-3])},
        {**a, "b": torch.ones(2, dtype=torch.bfloat16)},
    ]
    assert len({h, *(weights_sha256(v) for v in variants)}) == len(variants) + 1


def test_checkpoint_round_trip_with_adapter(demo_sam, micrograph, tmp_path):
    from napari_samphase.core.sam.adapter import adapter_name, attach_adapter
    from napari_samphase.core.sam.loading import load_model, save_checkpoint, weights_sha256
    from napari_samphase.core.sam.registry import Thresholds
    from napari_samphase.core.sam.session import SamSession

    sam = attach_adapter(demo_sam(), "gray")
    _perturb(sam.input_adapter, seed=5)
    th = Thresholds(pred_iou_thresh=0.66, stability_thresh=0.77)
    path = save_checkpoint(sam, tmp_path / "tuned.pth", "demo-synthetic", th, base_sha256="ab")
    meta = torch.load(path, weights_only=True)["samphase"]
    assert meta["adapter"] == "gray" and meta["base_sha256"] == "ab"
    assert meta["weights_sha256"] == weights_sha256(sam.state_dict())

    model = load_model("demo-synthetic", checkpoint=path, device="cpu")
    assert adapter_name(model.sam) == "gray" and model.thresholds == th
    want = sam.input_adapter.state_dict()
    got = model.sam.input_adapter.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)

    a = SamSession(sam.eval(), "demo-synthetic", precision="fp32")
    b = SamSession.from_name(checkpoint=path, device="cpu", precision="fp32")
    assert b.thresholds == th
    a.set_image(micrograph.image)
    b.set_image(micrograph.image)
    assert torch.equal(a.embedding, b.embedding)
    pa, pb = a.predict([[100, 120]]), b.predict([[100, 120]])
    assert np.array_equal(pa.mask, pb.mask) and pa.score == pb.score
    # the adapter was really in use: without it the embedding differs
    c = SamSession(demo_sam(), "demo-synthetic", precision="fp32")
    c.set_image(micrograph.image)
    assert not torch.allclose(a.embedding, c.embedding, atol=1e-3)


def test_plain_state_dict_loads_and_an_altered_weight_is_refused(demo_sam, tmp_path):
    from napari_samphase.core.sam.adapter import adapter_name, attach_adapter
    from napari_samphase.core.sam.loading import load_model, save_checkpoint

    plain = tmp_path / "plain.pth"
    torch.save(demo_sam().state_dict(), plain)
    assert adapter_name(load_model("demo-synthetic", plain, device="cpu").sam) == "none"

    for kind in ("none", "gray"):
        path = save_checkpoint(
            attach_adapter(demo_sam(), kind), tmp_path / f"{kind}.pth", "demo-synthetic"
        )
        assert adapter_name(load_model("demo-synthetic", path, device="cpu").sam) == kind
        obj = torch.load(path, weights_only=True)
        key = "input_adapter.conv2.weight" if kind == "gray" else "mask_decoder.iou_token.weight"
        obj["model"][key].view(-1)[0] += 1e-3
        torch.save(obj, path)
        with pytest.raises(CheckpointError, match="recorded hash"):
            load_model("demo-synthetic", path, device="cpu")


def test_unknown_adapter_names_are_refused(demo_sam, tmp_path):
    from napari_samphase.core.sam.adapter import attach_adapter
    from napari_samphase.core.sam.loading import load_model, save_checkpoint

    with pytest.raises(InputError, match="gray") as info:
        attach_adapter(demo_sam(), "rgb")
    assert "rgb" in str(info.value) and "none" in str(info.value)
    with pytest.raises(InputError, match="adapter"):
        save_checkpoint(demo_sam(), tmp_path / "x.pth", "demo-synthetic", adapter="gray")
    with pytest.raises(InputError, match="weights_sha256"):
        save_checkpoint(demo_sam(), tmp_path / "x.pth", "demo-synthetic", weights_sha256="0")
    path = save_checkpoint(demo_sam(), tmp_path / "future.pth", "demo-synthetic")
    obj = torch.load(path, weights_only=True)
    obj["samphase"]["adapter"] = "hyperspectral"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="hyperspectral"):
        load_model("demo-synthetic", path, device="cpu")


def test_attaching_keeps_an_existing_adapter(demo_sam):
    """A fine-tuned model's learned adapter is never silently replaced or dropped."""
    from napari_samphase.core.sam.adapter import adapter_name, attach_adapter

    sam = attach_adapter(demo_sam(), "gray")
    _perturb(sam.input_adapter)
    before = {k: v.clone() for k, v in sam.input_adapter.state_dict().items()}
    for kind in ("gray", "none"):
        assert attach_adapter(sam, kind) is sam and adapter_name(sam) == "gray"
        after = sam.input_adapter.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(k.startswith("input_adapter.") for k in sam.state_dict())
