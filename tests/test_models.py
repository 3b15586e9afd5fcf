"""Checkpoint registry, download (local HTTP server), verification and loading."""

import hashlib
import http.server
import threading
from dataclasses import replace
from functools import partial

import pytest

from napari_samphase.core.errors import CheckpointError, InputError
from napari_samphase.core.sam import architectures, loading, registry, weights


@pytest.fixture()
def tiny_checkpoint(tmp_path):
    """A real (demo-architecture) state dict on disk, and its SHA-256."""
    import torch

    sam = architectures.build_demo_sam()
    path = tmp_path / "served" / "tiny.pth"
    path.parent.mkdir()
    torch.save(sam.state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def server(tiny_checkpoint):
    handler = partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tiny_checkpoint[0].parent)
    )
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture()
def fake_model(monkeypatch, tiny_checkpoint, server):
    path, sha = tiny_checkpoint
    spec = replace(
        registry.MODELS["demo-synthetic"],
        name="fake",
        filename="tiny.pth",
        sha256=sha,
        url=server + "tiny.pth",
    )
    monkeypatch.setitem(registry.MODELS, "fake", spec)
    return spec


def test_registry_has_official_models_with_hashes():
    for name in ("vit_b", "vit_l", "vit_h"):
        spec = registry.MODELS[name]
        assert spec.url.startswith("https://dl.fbaipublicfiles.com/segment_anything/")
        assert len(spec.sha256) == 64 and spec.filename in spec.url
    with pytest.raises(InputError, match="unknown model"):
        registry.get_spec("vit_z")


def test_download_verifies_caches_and_loads(fake_model, cache_dir):
    calls = []
    path = weights.download("fake", progress=lambda d, t, m: calls.append((d, t)))
    assert path == cache_dir / "tiny.pth" and path.is_file()
    assert calls and calls[-1][0] == calls[-1][1]  # progress reached the total
    assert weights.is_cached("fake")
    sam = loading.load_sam("fake", device="cpu", fetch=False)
    assert sam.image_encoder.img_size == 256


def test_corrupted_cached_file_is_never_loaded(fake_model, cache_dir):
    weights.download("fake", progress=lambda *a: None)
    target = cache_dir / "tiny.pth"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])  # a partial file
    assert not weights.is_cached("fake")
    with pytest.raises(CheckpointError, match="incomplete or corrupted"):
        loading.load_sam("fake", device="cpu", fetch=False)
    # allowed to fetch: a fresh verified copy replaces it
    loading.load_sam("fake", device="cpu", fetch=True, progress=lambda *a: None)
    assert target.read_bytes() == data


def test_hash_mismatch_on_download_leaves_no_file(fake_model, cache_dir, monkeypatch):
    monkeypatch.setitem(registry.MODELS, "fake", replace(fake_model, sha256="0" * 64))
    with pytest.raises(CheckpointError, match="SHA-256"):
        weights.download("fake", progress=lambda *a: None)
    assert not (cache_dir / "tiny.pth").exists()


def test_offline_error_names_file_url_and_place(monkeypatch, cache_dir):
    spec = replace(registry.MODELS["vit_b"], url="http://127.0.0.1:9/sam_vit_b_01ec64.pth")
    monkeypatch.setitem(registry.MODELS, "vit_b", spec)
    with pytest.raises(CheckpointError) as err:
        loading.load_sam("vit_b", device="cpu")
    msg = str(err.value)
    assert "sam_vit_b_01ec64.pth" in msg and spec.url in msg and str(cache_dir) in msg
    with pytest.raises(CheckpointError, match="samphase download"):
        loading.load_sam("vit_b", device="cpu", fetch=False)


def test_user_checkpoint_errors(tmp_path, tiny_checkpoint):
    with pytest.raises(CheckpointError, match="does not exist"):
        loading.load_sam("demo-synthetic", checkpoint=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        loading.load_sam("demo-synthetic", checkpoint=junk)
    # a real checkpoint of another architecture
    with pytest.raises(CheckpointError, match="does not fit model vit_b"):
        loading.load_sam("vit_b", checkpoint=tiny_checkpoint[0])
    sam = loading.load_sam("demo-synthetic", checkpoint=tiny_checkpoint[0], device="cpu")
    assert not sam.training


def test_bundled_demo_model_matches_its_registered_hash():
    spec = registry.MODELS["demo-synthetic"]
    path = weights.ASSETS / spec.filename
    assert path.is_file(), "the demo model must ship with the package"
    assert path.stat().st_size <= 5 * 1024 * 1024
    assert weights.sha256sum(path) == spec.sha256


def test_loading_the_bundled_model_writes_nothing_into_the_package():
    before = sorted(p.name for p in weights.ASSETS.iterdir())
    loading.load_sam("demo-synthetic", device="cpu")
    assert weights.is_cached("demo-synthetic")
    assert sorted(p.name for p in weights.ASSETS.iterdir()) == before


def test_device_choice():
    import torch

    from napari_samphase.core.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device("cuda")


class _Payload:
    """Unpickling this creates ``marker``: observable if a loader ever runs it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_weights_only_loading_refuses_pickled_code(tmp_path, writer):
    import pickle

    import torch

    marker = tmp_path / "payload-ran"
    data = pickle.dumps({"x": _Payload(marker)})
    pickle.loads(data)  # the payload works: unpickling it creates the marker
    assert marker.exists()
    marker.unlink()
    bad = tmp_path / "evil.pth"
    if writer == "pickle":
        bad.write_bytes(data)
    else:
        torch.save({"x": _Payload(marker)}, bad)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        loading.load_sam("demo-synthetic", checkpoint=bad)
    assert not marker.exists()


def test_a_pickled_model_is_named_as_such(tmp_path):
    import torch

    path = tmp_path / "whole-model.pth"
    torch.save(architectures.build_demo_sam(), path)
    with pytest.raises(CheckpointError) as err:
        loading.load_sam("demo-synthetic", checkpoint=path)
    msg = str(err.value)
    assert "pickled Python objects" in msg and "state_dict()" in msg
    assert "segment_anything" in msg  # names what it would have imported
    assert "corrupted" not in msg


def test_a_truncated_file_says_so(tmp_path, tiny_checkpoint):
    data = tiny_checkpoint[0].read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted") as err:
        loading.load_sam("demo-synthetic", checkpoint=cut)
    assert "pickled" not in str(err.value)


def test_permission_denied_is_not_offline_or_corrupted(tmp_path, monkeypatch, cache_dir):
    import pooch
    import torch

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(cache_dir))

    spec = replace(registry.MODELS["vit_b"], url="http://127.0.0.1:9/sam_vit_b_01ec64.pth")
    monkeypatch.setitem(registry.MODELS, "vit_b", spec)
    monkeypatch.setattr(pooch, "retrieve", denied)
    with pytest.raises(CheckpointError) as err:
        weights.download("vit_b", progress=lambda *a: None)
    msg = str(err.value)
    assert "permission denied" in msg and str(cache_dir) in msg and "Offline" not in msg
    # an unreadable checkpoint file: permission denied, not "corrupted"
    path = tmp_path / "mine.pth"
    path.write_bytes(b"x")
    monkeypatch.setattr(torch, "load", lambda *a, **k: denied() if a[0] == path else None)
    with pytest.raises(CheckpointError) as err:
        loading.load_sam("demo-synthetic", checkpoint=path)
    msg = str(err.value)
    assert "permission denied" in msg and "corrupted" not in msg


def test_torch_floor_excludes_weights_only_bypasses():
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
        import tomli as tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    torch_req = next(Requirement(d) for d in deps if Requirement(d).name == "torch")
    floor = [Version(s.version) for s in torch_req.specifier if s.operator == ">="]
    assert floor and max(floor) >= Version("2.10")
    assert not torch_req.specifier.contains("2.9.1")


def test_loading_refuses_nothing_legitimate(tmp_path):
    """State dicts as users save them all load: plain, fp16, under "model", ours."""
    import torch

    sam = architectures.build_demo_sam()
    state = sam.state_dict()
    forms = {
        "plain": state,
        "fp16": {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
        "nested": {"model": state, "epoch": 3, "optimizer": {"lr": 1e-4}},
    }
    for name, obj in forms.items():
        torch.save(obj, tmp_path / f"{name}.pth")
    loading.save_checkpoint(sam, tmp_path / "ours.pth", "demo-synthetic")
    for path in sorted(tmp_path.glob("*.pth")):
        loaded = loading.load_sam("demo-synthetic", checkpoint=path, device="cpu")
        ref = forms["fp16"] if path.stem == "fp16" else state
        assert all(torch.equal(v, ref[k].to(v.dtype)) for k, v in loaded.state_dict().items())


def test_checkpoint_round_trip_carries_thresholds(tmp_path, micrograph):
    import numpy as np
    import torch

    from napari_samphase.core.sam.session import SamSession

    torch.manual_seed(3)
    sam = architectures.build_demo_sam()
    th = registry.Thresholds(pred_iou_thresh=0.71, stability_thresh=0.93)
    path = loading.save_checkpoint(
        sam, tmp_path / "tuned.pth", "demo-synthetic", th, epochs=np.int64(3), data="set A"
    )
    assert not path.with_name("tuned.pth.part").exists()
    # the checkpoint names its architecture: --model is only the fallback
    model = loading.load_model("vit_b", checkpoint=path, device="cpu")
    assert model.architecture == "demo-synthetic" and model.thresholds == th
    assert model.metadata["epochs"] == 3 and model.metadata["data"] == "set A"
    assert model.sha256 == weights.sha256sum(path)
    a = SamSession(sam.eval(), "demo-synthetic", precision="fp32")
    b = SamSession.from_name("vit_b", checkpoint=path, device="cpu", precision="fp32")
    assert b.thresholds == th and b.name == "demo-synthetic"
    a.set_image(micrograph.image)
    b.set_image(micrograph.image)
    assert torch.equal(a.embedding, b.embedding)
    pa, pb = a.predict([[100, 120]]), b.predict([[100, 120]])
    assert np.array_equal(pa.mask, pb.mask) and pa.score == pb.score
    # a plain state dict gets the architecture's registered thresholds
    plain = tmp_path / "plain.pth"
    torch.save(sam.state_dict(), plain)
    assert loading.load_model("demo-synthetic", plain).thresholds == (
        registry.MODELS["demo-synthetic"].thresholds
    )


def test_save_checkpoint_refuses_what_cannot_load_back(tmp_path):
    sam = architectures.build_demo_sam()
    with pytest.raises(InputError, match="pred_iou_thresh"):
        loading.save_checkpoint(sam, tmp_path / "a.pth", "demo-synthetic", pred_iou_thresh=0.5)
    with pytest.raises(InputError, match="only str, numbers"):
        loading.save_checkpoint(sam, tmp_path / "a.pth", "demo-synthetic", when=object())
    with pytest.raises(InputError, match="unknown model"):
        loading.save_checkpoint(sam, tmp_path / "a.pth", "vit_z")
    assert not list(tmp_path.iterdir())


def test_unknown_architecture_in_a_checkpoint(tmp_path):
    import torch

    sam = architectures.build_demo_sam()
    path = tmp_path / "future.pth"
    torch.save({"model": sam.state_dict(), "samphase": {"architecture": "vit_q"}}, path)
    with pytest.raises(CheckpointError, match="vit_q"):
        loading.load_sam("demo-synthetic", checkpoint=path)
