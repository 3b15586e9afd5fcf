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


def test_weights_only_loading_refuses_pickled_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CheckpointError):
        loading.load_sam("demo-synthetic", checkpoint=bad)
