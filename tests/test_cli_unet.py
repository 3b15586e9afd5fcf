"""``samphase train unet`` and ``samphase predict``, run in-process as from a shell: train
a tiny U-Net on generated micrographs whose phases are known, then predict held-out
ones and check the phase map, its class values and every file written beside it."""

import hashlib
import json
import re

import numpy as np
import pytest
import tifffile

from napari_samphase.cli import main
from napari_samphase.core.image.io import write_png, write_tiff
from napari_samphase.core.image.synthetic import make_micrograph

VALUES = np.array([0, 5, 9])  # label value of the matrix and the two particle phases
NAMES = "matrix,dark,bright"
# depth 2, width 8, small crops: a few seconds per run on two CPU cores (width 4 is
# too small to learn both particle phases from every seed)
TINY = ["--depth", "2", "--width", "8", "--crop", "48", "--crops-per-image", "8",
        "--lr", "0.01", "--device", "cpu", "--val-fraction", "0.34"]  # fmt: skip
PHASE_FILES = (
    "_phases.tif",
    "_phase_overlay.png",
    "_phase_table.csv",
    "_phase_fractions.png",
    "_particles.csv",
    "_coco.json",
    "_phase_stats.csv",
    "_sizes.csv",
    "_sizes.png",
    "_panoptic.png",
    "_panoptic.json",
    "_provenance.json",
)


def _micrograph(seed, shape=(96, 96)):
    return make_micrograph(shape, n_particles=12, n_phases=2, radius=(6, 14), seed=seed)


def _run(capsys, *argv):
    code = main([*map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_error_line(err):
    return err.startswith("samphase: error:") and len(err.strip().splitlines()) == 1


def _csv(path):
    lines = path.read_text().splitlines()
    head = lines[0].split(",")
    return [dict(zip(head, line.split(","), strict=True)) for line in lines[1:]]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one torch thread is fastest, and on busy cores two threads wait on
    each other (over 20x slower here); the count is restored after this module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Three 96 x 96 micrographs (PNG) and their phase labels 0 / 5 / 9 (TIFF)."""
    root = tmp_path_factory.mktemp("data")
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    for i in range(3):
        m = _micrograph(i)
        write_png(images / f"m{i}.png", m.image)
        write_tiff(labels / f"m{i}_labels.tif", VALUES[m.phases].astype(np.uint8))
    return images, labels


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Two micrographs the network never saw (TIFF, no pixel size) and their truth."""
    root = tmp_path_factory.mktemp("test")
    found = {}
    for seed, shape in ((11, (128, 128)), (12, (96, 112))):
        m = _micrograph(seed, shape)
        write_tiff(root / f"t{seed}.tif", m.image)
        found[root / f"t{seed}.tif"] = VALUES[m.phases]
    return found


@pytest.fixture(scope="module")
def trained(folders, tmp_path_factory):
    """6 epochs on the three micrographs: (checkpoint, exit code, stdout, stderr)."""
    import contextlib
    import io

    images, labels = folders
    ckpt = tmp_path_factory.mktemp("run") / "models" / "unet.pth"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", "unet", str(images), str(labels), "--out", str(ckpt), *TINY,
                     "--epochs", "6", "--class-names", NAMES])  # fmt: skip
    return ckpt, code, out.getvalue(), err.getvalue()


def test_train_unet_then_predict_held_out_images_accurately(trained, held_out, tmp_path, capsys):
    from napari_samphase.core.unet.checkpoint import read_unet

    ckpt, code, out, err = trained
    assert code == 0, err
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [e.split(":")[0] for e in epochs] == [f"epoch {i}/6" for i in range(1, 7)]
    assert all("train loss " in e and "val IoU -" not in e for e in epochs)  # one held out
    assert re.search(rf"checkpoint: {re.escape(str(ckpt))} \(best epoch \d, val IoU 0\.\d+", out)
    assert f"samphase predict {ckpt} IMAGE... --out DIR" in out
    _, meta = read_unet(ckpt)
    assert meta["classes"] == [0, 5, 9] and meta["class_names"] == NAMES.split(",")
    assert meta["unet"]["depth"] == 2 and meta["unet"]["width"] == 8
    assert sorted(meta["training_data"]["train"] + meta["training_data"]["val"]) == [
        "m0",
        "m1",
        "m2",
    ]

    image, truth = next(iter(held_out.items()))
    code, out, err = _run(capsys, "-q", "predict", ckpt, image, "--out", tmp_path / "p",
                          "--device", "cpu")  # fmt: skip
    assert code == 0, err
    phases = tifffile.imread(tmp_path / "p" / f"{image.stem}_phases.tif")
    assert phases.shape == truth.shape and phases.dtype == np.uint8
    assert set(np.unique(phases).tolist()) == {0, 5, 9}  # the labels' values, not 0..K-1
    assert (phases == truth).mean() > 0.9
    assert out.splitlines()[0].startswith(f"{image.stem}: 3 phases by unet")
    assert "matrix: " in out.splitlines()[0]  # fractions named by the class names


def test_predict_writes_every_phase_output_in_physical_units(trained, held_out, tmp_path, capsys):
    from napari_samphase.core.image.units import read_pixel_size
    from napari_samphase.core.outputs.panoptic import phase_and_instance, read_panoptic

    ckpt = trained[0]
    out_dir = tmp_path / "p"
    code, out, err = _run(capsys, "-q", "predict", ckpt, *held_out, "--out", out_dir,
                          "--device", "cpu", "--pixel-size", "50nm", "--probabilities",
                          "--tile", "64")  # fmt: skip
    assert code == 0, err
    stems = [p.stem for p in held_out]
    expected = {s + f for s in stems for f in (*PHASE_FILES, "_probabilities.tif")}
    assert {p.name for p in out_dir.iterdir()} == expected | {"phase_summary.csv"}
    assert "pixel size unknown" not in err
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    for path in held_out:
        s = path.stem
        phases = tifffile.imread(out_dir / f"{s}_phases.tif")
        assert read_pixel_size(out_dir / f"{s}_phases.tif").um == pytest.approx(0.05)
        # K x H x W probabilities whose most probable class is the phase written
        probs = tifffile.imread(out_dir / f"{s}_probabilities.tif")
        assert probs.shape == (3, *phases.shape) and probs.dtype == np.float32
        assert np.allclose(probs.sum(0), 1.0, atol=1e-4)
        assert (VALUES[probs.argmax(0)] == phases).all()
        # phase table in um^2, one row per phase present, fractions from the map
        table = _csv(out_dir / f"{s}_phase_table.csv")
        assert [int(r["phase"]) for r in table] == sorted(np.unique(phases).tolist())
        for r in table:
            area = float(r["area_um2"])
            assert area == pytest.approx((phases == int(r["phase"])).sum() * 0.05**2, rel=1e-4)
        particles = _csv(out_dir / f"{s}_particles.csv")
        assert "ecd_um" in particles[0] and {r["phase"] for r in particles} <= {"5", "9"}
        # panoptic: the phase map exactly, the matrix (lowest class) as stuff
        pan = read_panoptic(*[out_dir / f"{s}_panoptic.{e}" for e in ("png", "json")])
        back, instances = phase_and_instance(pan)
        assert (back == phases).all()
        assert pan.stuff_ids() == (0,)
        assert {c["id"]: c["name"] for c in pan.categories} == dict(
            zip(VALUES.tolist(), NAMES.split(","), strict=True)
        )
        assert instances.max() == len(particles)  # the particles are the things
        coco = json.loads((out_dir / f"{s}_coco.json").read_text())
        assert {c["name"] for c in coco["categories"]} >= {"dark", "bright"}
        prov = json.loads((out_dir / f"{s}_provenance.json").read_text())
        assert prov["checkpoint_sha256"] == digest
        assert prov["classes"] == [0, 5, 9] and prov["class_names"] == NAMES.split(",")
        assert prov["pixel_size"]["um_per_px"] == pytest.approx(0.05)
        assert prov["stuff"] == [0]
    summary = _csv(out_dir / "phase_summary.csv")
    assert [int(r["phase"]) for r in summary] == [0, 5, 9]


def test_predict_without_a_pixel_size_measures_in_pixels(trained, held_out, tmp_path, capsys):
    image = next(iter(held_out))
    out_dir = tmp_path / "p"
    code, out, err = _run(capsys, "-q", "predict", trained[0], image, "--out", out_dir,
                          "--device", "cpu", "--stuff", "none")  # fmt: skip
    assert code == 0, err
    assert "pixel size unknown" in err and image.stem in err
    table = _csv(out_dir / f"{image.stem}_phase_table.csv")
    assert "area_px2" in table[0] and "area_um2" not in table[0]
    assert not (out_dir / f"{image.stem}_probabilities.tif").exists()
    pan = json.loads((out_dir / f"{image.stem}_panoptic.json").read_text())
    assert all(c["isthing"] for c in pan["categories"])  # --stuff none: all particles


def test_resume_continues_the_run_and_init_starts_from_weights(folders, trained, tmp_path, capsys):
    from napari_samphase.core.unet.checkpoint import read_unet

    images, labels = folders
    ckpt = tmp_path / "u.pth"
    quick = [*TINY, "--crops-per-image", "2"]
    code, out, err = _run(capsys, "train", "unet", images, labels, "--out", ckpt, *quick,
                          "--epochs", "1")  # fmt: skip
    assert code == 0, err
    code, out, err = _run(capsys, "train", "unet", images, labels, "--out", ckpt, *quick,
                          "--epochs", "2", "--resume")  # fmt: skip
    assert code == 0, err
    epochs = [line.split(":")[0] for line in out.splitlines() if line.startswith("epoch ")]
    assert epochs == ["epoch 2/2"]  # epoch 1 is not run again
    assert f"checkpoint: {ckpt}" in out and "; 2 epochs)" in out
    # a changed option other than the resumable ones is refused
    code, out, err = _run(capsys, "train", "unet", images, labels, "--out", ckpt, *quick,
                          "--epochs", "3", "--depth", "3", "--resume")  # fmt: skip
    assert code == 1 and _one_error_line(err) and "depth" in err
    # --init: a new run from the trained weights, which keeps their class names
    again = tmp_path / "again.pth"
    code, out, err = _run(capsys, "-q", "train", "unet", images, labels, "--out", again,
                          *quick, "--epochs", "1", "--init", trained[0])  # fmt: skip
    assert code == 0, err
    assert not [line for line in out.splitlines() if line.startswith("epoch ")]  # -q
    meta, before = read_unet(again)[1], read_unet(trained[0])[1]
    assert meta["init_sha256"] == before["weights_sha256"]
    assert meta["class_names"] == NAMES.split(",")


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing label", "extra"),
        ("unknown device", "quantum"),
        ("resume without a run", "resume"),
        ("class names", "class names"),
        ("one class", "at least two"),
        ("bad epochs", "epochs"),
    ],
)
def test_bad_training_input_is_one_line_and_writes_nothing(folders, tmp_path, capsys, case, needle):
    images, labels = folders
    mine = tmp_path / "images"
    mine.mkdir()
    for p in images.iterdir():
        mine.joinpath(p.name).write_bytes(p.read_bytes())
    extra = {
        "missing label": [],
        "unknown device": ["--device", "quantum"],
        "resume without a run": ["--resume"],
        "class names": ["--class-names", "a,b"],
        "one class": ["--ignore", "5"],  # with 9 also ignored below: only class 0 left
        "bad epochs": ["--epochs", "0"],
    }[case]
    if case == "missing label":
        write_png(mine / "extra.png", _micrograph(7).image)
    lab = labels
    if case == "one class":
        lab = tmp_path / "labels"
        lab.mkdir()
        for p in labels.iterdir():
            arr = tifffile.imread(p)
            write_tiff(lab / p.name, np.where(arr == 9, 5, arr).astype(np.uint8))
    out = tmp_path / "models" / "u.pth"
    code, _, err = _run(capsys, "train", "unet", mine, lab, "--out", out, *TINY, *extra)
    assert code == 1, err
    assert _one_error_line(err) and needle in err
    assert _leftovers(tmp_path / "models") == []  # not even the folder


def test_bad_prediction_input_is_one_line_and_writes_nothing(trained, held_out, tmp_path, capsys):
    ckpt = trained[0]
    good = list(held_out)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint" * 10)
    unreadable = tmp_path / "t99.tif"
    unreadable.write_bytes(b"II*\x00 not a tiff")
    out = tmp_path / "out"
    cases = [
        ([broken, *good], "broken.pth"),  # checked before any image is read
        ([tmp_path / "absent.pth", *good], "absent.pth"),
        ([ckpt, *good, "--device", "quantum"], "quantum"),
        ([ckpt, *good, tmp_path / "missing.tif"], "missing.tif"),
        ([ckpt, *good, unreadable], "t99"),  # the last image fails: none is written
        ([ckpt, *good, "--stuff", "3"], "--stuff"),  # not a class of the checkpoint
        ([ckpt, *good, "--tile", "2"], "tile"),
    ]
    for argv, needle in cases:
        code, _, err = _run(capsys, "-q", "predict", *argv, "--out", out)
        assert code == 1, (argv, err)
        assert _one_error_line(err) and needle in err, err
        assert _leftovers(out) == [] and not [p for p in tmp_path.iterdir() if p.name[0] == "."]


def test_class_names_take_a_list_or_value_name_pairs():
    from napari_samphase.cli.parser import parse_class_names
    from napari_samphase.core.errors import InputError

    assert parse_class_names(None) is None
    assert parse_class_names("matrix, dark,bright") == ["matrix", "dark", "bright"]
    assert parse_class_names("0=matrix,9=bright") == {0: "matrix", 9: "bright"}
    for bad in ("0=matrix,dark", "x=matrix", "a,,b"):
        with pytest.raises(InputError, match="--class-names"):
            parse_class_names(bad)


def test_reference_lists_every_option_with_the_dataclass_default():
    """docs/cli.md's `train unet` table: one row per option with UNetTrainConfig's
    default, so neither the parser nor the docs drift from the Python API."""
    from dataclasses import fields
    from pathlib import Path

    from napari_samphase.cli.parser import TRAIN_UNET_OPTIONS
    from napari_samphase.core.training.unet_trainer import UNetTrainConfig

    defaults = {f.name: f.default for f in fields(UNetTrainConfig)}
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    section = text.split("## `samphase train unet")[1].split("\n## ")[0]
    rows = {}
    for row in section.splitlines():
        if row.startswith("| `--"):
            option, default = re.split(r"(?<!\\)\|", row)[1:3]
            rows[option.strip().strip("`").split()[0]] = default.strip().strip("`")
    for option, (name, _, _) in TRAIN_UNET_OPTIONS.items():
        default = defaults[name]
        shown = {None: "none" if name == "ignore" else "no limit"}.get(default, str(default))
        assert rows[option] == shown, option
    assert {"--out", "--class-names", "--resume", "--init"} <= set(rows)
    assert "## `samphase predict" in text
