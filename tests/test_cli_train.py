"""``samphase train sam``, run in-process as from a shell: fine-tune the demo model on a
few generated micrographs, then segment with the checkpoint alone."""

import os
import re
import signal

import numpy as np
import pytest
import tifffile

from napari_samphase.cli import main
from napari_samphase.core.image.io import write_png, write_tiff
from napari_samphase.core.image.synthetic import make_micrograph

TRAIN = ["--base", "demo-synthetic", "--device", "cpu", "--val-fraction", "0.34"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Three 96 x 96 micrographs (PNG) and their instance labels (TIFF), in two folders."""
    root = tmp_path_factory.mktemp("data")
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    for i in range(3):
        m = make_micrograph((96, 96), n_particles=8, seed=i)
        write_png(images / f"m{i}.png", m.image)
        write_tiff(labels / f"m{i}.tif", m.instances.astype(np.uint16))
    return images, labels


def _run(capsys, *argv):
    code = main([*map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _leftovers(path):
    """The checkpoint and anything written beside it under its name."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))


@pytest.fixture(scope="module")
def trained(folders, tmp_path_factory):
    """One epoch on the three micrographs: (checkpoint, exit code, stdout, stderr)."""
    import contextlib
    import io

    images, labels = folders
    ft = tmp_path_factory.mktemp("run") / "models" / "ft.pth"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", "sam", str(images), str(labels), "--out", str(ft), *TRAIN,
                     "--epochs", "1"])  # fmt: skip
    return ft, code, out.getvalue(), err.getvalue()


def test_train_then_segment_with_the_checkpoint_alone(folders, trained, tmp_path, capsys):
    from napari_samphase.core.sam.loading import load_model

    images, _ = folders
    ft, code, out, err = trained
    assert code == 0, err
    assert ft.is_file()
    lines = out.splitlines()
    epoch = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch) == 1 and epoch[0].startswith("epoch 1/1: train loss ")
    assert "val IoU" in epoch[0] and "val IoU -" not in epoch[0]  # one image held out
    assert f"checkpoint: {ft} (best epoch 1" in out
    assert f"samphase segment IMAGE --checkpoint {ft}" in out

    model = load_model(checkpoint=ft, device="cpu")
    assert model.architecture == "demo-synthetic"  # read from the file, not --model
    meta = model.metadata  # what the run was: the config and the best epoch's metrics
    assert meta["config"]["epochs"] == 1 and meta["config"]["mode"] == "decoder"
    assert meta["config"]["base"] == "demo-synthetic"
    assert meta["metrics"]["best_epoch"] == 1
    assert sorted(meta["training_data"]["train"] + meta["training_data"]["val"]) == [
        "m0", "m1", "m2"
    ]  # fmt: skip

    out_dir = tmp_path / "seg"
    img = images / "m0.png"
    code, out, err = _run(capsys, "-q", "segment", img, "--checkpoint", ft, "--out", out_dir,
                          "--points-per-side", "8", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    labels_out = tifffile.imread(out_dir / "m0_labels.tif")
    assert labels_out.shape == (96, 96) and labels_out.max() >= 1


def test_label_size_mismatch_is_one_line_naming_the_file(folders, tmp_path, capsys):
    images, labels = folders
    bad = tmp_path / "labels"
    bad.mkdir()
    for p in labels.iterdir():
        bad.joinpath(p.name).write_bytes(p.read_bytes())
    write_tiff(bad / "m1.tif", np.ones((80, 96), np.uint16))
    ft = tmp_path / "ft.pth"
    code, out, err = _run(capsys, "train", "sam", images, bad, "--out", ft, *TRAIN)
    assert code == 1
    assert err.startswith("samphase: error:") and len(err.strip().splitlines()) == 1
    assert "m1" in err and "80" in err
    assert _leftovers(ft) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("--mode", "everything"), ("--adapter", "rgb"), ("--epochs", "0"), ("--device", "tpu")],
)
def test_bad_options_exit_1_before_any_work(folders, tmp_path, capsys, option, value):
    images, labels = folders
    ft = tmp_path / "ft.pth"
    code, out, err = _run(capsys, "train", "sam", images, labels, "--out", ft, option, value)
    assert code == 1
    assert err.startswith("samphase: error:") and (option in err or value in err)
    assert len(err.strip().splitlines()) == 1
    assert _leftovers(ft) == []


def test_resume_needs_an_existing_checkpoint(folders, tmp_path, capsys):
    images, labels = folders
    code, _, err = _run(capsys, "train", "sam", images, labels, "--out", tmp_path / "no.pth",
                        "--resume", *TRAIN)  # fmt: skip
    assert code == 1 and "resume" in err and "no.pth" in err


def test_ctrl_c_keeps_the_best_epoch(folders, tmp_path, capsys, monkeypatch):
    """A Ctrl+C after the first epoch stops the run at its next step: the checkpoint of
    epoch 1 stays, and the command says so (-q: without bars or epoch lines)."""
    from napari_samphase.cli.commands import train
    from napari_samphase.core.sam.loading import load_model

    reported = []

    def interrupt_after_first(report, epochs):
        reported.append(report.epoch)
        if report.epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)  # as the terminal would
        return f"epoch {report.epoch}/{epochs}"

    monkeypatch.setattr(train, "epoch_line", interrupt_after_first)
    before = signal.getsignal(signal.SIGINT)
    images, labels = folders
    ft = tmp_path / "ft.pth"
    code, out, err = _run(capsys, "-q", "train", "sam", images, labels, "--out", ft, *TRAIN,
                          "--epochs", "3", "--patience", "0")  # fmt: skip
    assert code == 130, err
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl+C means "interrupt" again
    assert reported == [1]
    assert "keeping the best epoch" in err and "%|" not in err  # no bar with -q
    assert not any(line.startswith("epoch") for line in out.splitlines())
    assert "cancelled after 1 of 3 epochs: the best epoch was kept" in out
    assert f"checkpoint: {ft} (best epoch 1" in out
    assert load_model(checkpoint=ft, device="cpu").metadata["metrics"]["best_epoch"] == 1


def test_resume_continues_the_run(folders, trained, tmp_path, capsys):
    """--resume picks up the saved run: only epoch 2 of 2 runs after the fixture's 1."""
    images, labels = folders
    ft = tmp_path / "ft.pth"
    for suffix in ("", ".state"):  # the checkpoint and its training state
        src = trained[0].with_name(trained[0].name + suffix)
        ft.with_name(ft.name + suffix).write_bytes(src.read_bytes())
    code, out, err = _run(capsys, "train", "sam", images, labels, "--out", ft, *TRAIN,
                          "--epochs", "2", "--resume")  # fmt: skip
    assert code == 0, err
    epochs = [line.split(":")[0] for line in out.splitlines() if line.startswith("epoch ")]
    assert epochs == ["epoch 2/2"]
    assert f"checkpoint: {ft}" in out and "; 2 epochs)" in out


def test_reference_lists_every_option_with_the_dataclass_default():
    """docs/cli.md's `train sam` table: one row per option, showing SamTrainConfig's
    default (so neither the parser nor the docs drift from the Python API)."""
    from dataclasses import fields
    from pathlib import Path

    from napari_samphase.cli.parser import TRAIN_SAM_OPTIONS
    from napari_samphase.core.training.sam_trainer import SamTrainConfig

    defaults = {f.name: f.default for f in fields(SamTrainConfig)}
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    section = text.split("## `samphase train sam")[1].split("\n## ")[0]
    lines = [row for row in section.splitlines() if row.startswith("| `--")]
    cells = [re.split(r"(?<!\\)\|", row)[1:3] for row in lines]  # "\|" is no cell break
    rows = {
        option.strip().strip("`").split()[0]: default.strip().strip("`")
        for option, default in cells
    }
    for option, (name, _, _) in TRAIN_SAM_OPTIONS.items():
        default = defaults[name]
        assert rows[option] == ("no limit" if default is None else str(default)), option
    assert {"--out", "--semantic", "--resume"} <= set(rows)
