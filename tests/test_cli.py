"""The samphase command, run in-process as a user would from a shell."""

import csv

import numpy as np
import pytest
import tifffile

from napari_samphase.cli import main
from napari_samphase.core.image.io import write_png
from napari_samphase.core.image.synthetic import make_micrograph


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("in")
    m = make_micrograph((256, 256), n_particles=25, seed=11)
    write_png(d / "a.png", m.image)
    return d / "a.png", m


def _run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _segment_phases(capsys, path, out, *extra):
    """Weight-free masks and 4 phases (matrix + 3 particle phases) of the sample."""
    args = ["--proposer", "superpixels", "--phases", "4", "--background", "ignore"]
    return _run(capsys, "segment", path, *args, *extra, "--out", out)


def test_segment_superpixels_with_phases_writes_everything(sample, tmp_path, capsys):
    path, m = sample
    code, out, err = _segment_phases(capsys, path, tmp_path / "res", "--features", "intensity")
    assert code == 0, err
    res = tmp_path / "res"
    names = sorted(p.name for p in res.iterdir())
    assert names == sorted(
        [
            "a_labels.tif",
            "a_masks.csv",
            "a_overlay.png",
            "a_phases.tif",
            "a_phase_overlay.png",
            "a_phase_table.csv",
            "a_phase_fractions.png",
            "a_mask_phases.csv",
            "a_panoptic.png",
            "a_panoptic.json",
            "a_particles.csv",
            "a_phase_stats.csv",
            "a_sizes.png",
            "a_sizes.csv",
            "a_coco.json",
            "a_provenance.json",
        ]
    )
    labels = tifffile.imread(res / "a_labels.tif")
    n = len(np.unique(labels[labels > 0]))
    assert n >= 25
    assert len((res / "a_masks.csv").read_text().splitlines()) == n + 1
    phases = tifffile.imread(res / "a_phases.tif")
    from napari_samphase.core.evaluation.metrics import semantic_metrics

    assert semantic_metrics(phases, m.phases)["pixel_accuracy"] > 0.8
    table = (res / "a_phase_table.csv").read_text().splitlines()
    header = "phase,color,area_px2,area_fraction,area_fraction_ci_low,area_fraction_ci_high,"
    assert table[0] == header + "count,mean_intensity"  # a PNG carries no pixel size
    assert len(table) == 1 + 4  # matrix + 3 particle phases, no unlabelled background
    assert "4 phases" in out
    from napari_samphase.core.outputs.panoptic import phase_and_instance, read_panoptic

    panoptic_phases, instances = phase_and_instance(
        read_panoptic(res / "a_panoptic.png", res / "a_panoptic.json")
    )
    assert np.array_equal(panoptic_phases, phases)  # one map: the phases and ...
    for i in np.unique(instances[instances > 0])[:20]:  # ... each particle, from a mask
        assert len(np.unique(labels[instances == i])) == 1


def test_proposer_options_reach_the_watershed(sample, tmp_path, capsys):
    """Dark and bright particles: objects=both finds both polarities, objects=dark only
    the dark ones, so the option must have reached the proposer."""
    from napari_samphase.core.evaluation.metrics import instance_metrics

    path, m = sample
    recall = {}
    for objects in ("both", "dark"):
        out = tmp_path / objects
        args = ["--proposer", "watershed", "--proposer-option", f"objects={objects}"]
        code, _, err = _run(capsys, "segment", path, *args, "--out", out)
        assert code == 0, err
        labels = tifffile.imread(out / "a_labels.tif")
        recall[objects] = instance_metrics(labels, m.instances)["recall50"]
    assert recall["both"] >= 0.8
    assert recall["dark"] < recall["both"] - 0.2


def test_evaluate_semantic_and_instance(sample, tmp_path, capsys):
    path, m = sample
    _segment_phases(capsys, path, tmp_path / "pred")
    truth = tmp_path / "truth"
    truth.mkdir()
    tifffile.imwrite(truth / "a.tif", m.phases)
    code, out, _ = _run(capsys, "evaluate", "--pred", tmp_path / "pred", "--truth", truth)
    assert code == 0
    assert "pixel_accuracy" in out.splitlines()[0]
    assert (tmp_path / "pred" / "evaluation.csv").is_file()
    tifffile.imwrite(truth / "a.tif", m.instances.astype(np.uint16))
    code, out, _ = _run(
        capsys,
        "evaluate",
        "--pred",
        tmp_path / "pred",
        "--truth",
        truth,
        "--instance",
        "--out",
        tmp_path / "inst.csv",
    )
    assert code == 0
    rows = (tmp_path / "inst.csv").read_text().splitlines()
    header, first = rows[0].split(","), rows[1].split(",")
    from napari_samphase.core.evaluation.metrics import instance_metrics

    expected = instance_metrics(tifffile.imread(tmp_path / "pred" / "a_labels.tif"), m.instances)
    assert float(first[header.index("recall50")]) == pytest.approx(expected["recall50"], 1e-4)
    for column in ("coco_ap50", "coco_ap", "dsb_ap"):
        assert float(first[header.index(column)]) == pytest.approx(expected[column], 1e-4)
    assert expected["recall50"] > 0.5


def test_evaluate_semantic_reports_one_to_one_and_many_to_one(tmp_path, capsys):
    """A surplus cluster is wrong in the headline mIoU; the many-to-one mIoU, which
    merges it into the class it overlaps using the truth, is its own column."""
    truth = np.zeros((16, 16), np.uint8)
    truth[:, 8:] = 1
    pred = truth.copy()
    pred[:4, :8] = 2  # a third cluster inside class 0
    (tmp_path / "p").mkdir(), (tmp_path / "t").mkdir()
    tifffile.imwrite(tmp_path / "p" / "x_phases.tif", pred)
    tifffile.imwrite(tmp_path / "t" / "x.tif", truth)
    code, out, err = _run(capsys, "evaluate", "--pred", tmp_path / "p", "--truth", tmp_path / "t")
    assert code == 0, err
    rows = (tmp_path / "p" / "evaluation.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(","), strict=True))
    assert header[:3] == ["image", "pixel_accuracy", "miou"]
    # class 0: 96 of its 128 pixels predicted, none wrongly -> IoU 0.75; class 1: 1
    assert float(first["miou"]) == pytest.approx(0.875)
    assert float(first["pixel_accuracy"]) == pytest.approx(0.875)
    assert float(first["unmatched_clusters"]) == 1
    assert float(first["miou_many_to_one"]) == pytest.approx(1.0)
    assert "miou_many_to_one" in out.splitlines()[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "vit_z"], "unknown model 'vit_z'"),
        (["--proposer", "magic"], "unknown proposer 'magic'"),
        (["--phases", "lots"], "--phases takes"),
        (["--device", "tpu"], "unknown device"),
        (["--proposer", "threshold", "--phases", "3", "--features", "full"], "SAM image embedding"),
        (["--phases", "3", "--features", "colour"], "unknown feature"),
        (["--checkpoint", "/nonexistent/sam.pth"], "does not exist"),
        (["--proposer", "watershed", "--proposer-option", "nope=1"], "has no option"),
        (["--proposer", "watershed", "--proposer-option", "objects"], "KEY=VALUE"),
        (["--proposer-option", "sigma=2"], "for the weight-free proposers"),
    ],
)
def test_bad_options_give_one_line_and_no_output(sample, tmp_path, capsys, args, message):
    path, _ = sample
    code, _, err = _run(capsys, "segment", path, *args, "--out", tmp_path / "res")
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "res").exists()


def test_bad_images_leave_no_partial_output(sample, tmp_path, capsys):
    good, _ = sample
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"nope")
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((3, 32, 32), np.uint8), photometric="minisblack")
    for bad, message in ((junk, "cannot read"), (stack, "3D stacks")):
        code, _, err = _run(
            capsys, "segment", good, bad, "--proposer", "threshold", "--out", tmp_path / "res"
        )
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "res").exists()
    assert list(tmp_path.glob(".res.*")) == []  # no staging folder left behind


def test_corrupted_checkpoint_is_one_line(sample, tmp_path, capsys):
    path, _ = sample
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x80\x02}q\x00")
    code, _, err = _run(
        capsys,
        "segment",
        path,
        "--model",
        "demo-synthetic",
        "--checkpoint",
        bad,
        "--out",
        tmp_path / "res",
    )
    assert code == 1 and "not a readable checkpoint" in err


def test_download_offline_is_a_clear_error(monkeypatch, cache_dir, capsys):
    from dataclasses import replace

    from napari_samphase.core.sam import registry

    spec = replace(registry.MODELS["vit_b"], url="http://127.0.0.1:9/sam_vit_b_01ec64.pth")
    monkeypatch.setitem(registry.MODELS, "vit_b", spec)
    code, _, err = _run(capsys, "download", "--model", "vit_b")
    assert code == 1
    assert "sam_vit_b_01ec64.pth" in err and str(cache_dir) in err


def test_sample_command(tmp_path, capsys):
    code, out, _ = _run(capsys, "sample", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").is_file()


def test_demo_runs_offline_on_the_sample(tmp_path, capsys):
    from napari_samphase.core.evaluation.metrics import instance_metrics
    from napari_samphase.core.image.synthetic import sample_micrograph

    code, out, err = _run(capsys, "demo", "--out", tmp_path / "demo")
    assert code == 0, err
    d = tmp_path / "demo"
    labels = tifffile.imread(d / "sample_micrograph_labels.tif")
    assert instance_metrics(labels, sample_micrograph().instances)["recall50"] >= 0.75
    assert "demo-synthetic" in out
    # the sample goes in as a TIFF that carries its pixel size, read back by segment
    from napari_samphase.core.image.synthetic import SAMPLE_PIXEL_SIZE
    from napari_samphase.core.image.units import read_pixel_size

    size = read_pixel_size(d / "sample_micrograph.tif")
    assert size.um == pytest.approx(SAMPLE_PIXEL_SIZE.um)
    assert read_pixel_size(d / "sample_micrograph_phases.tif").um == pytest.approx(size.um)
    # the printed phase table is the one written, in um^2 and um
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "area (µm²)" in line)
    assert "mean ECD (µm)" in lines[at] and "95% CI (%)" in lines[at]
    with open(d / "sample_micrograph_phase_table.csv") as fh:
        table = list(csv.DictReader(fh))
    with open(d / "sample_micrograph_phase_stats.csv") as fh:
        stats = {r["phase"]: r for r in csv.DictReader(fh)}
    assert len(table) >= 3
    for row, printed in zip(table, lines[at + 1 :], strict=False):
        cells = printed.split()
        assert cells[0] == ("bg" if row["phase"] == "0" else row["phase"])
        assert float(cells[1]) == pytest.approx(float(row["area_um2"]), rel=5e-3)
        assert float(cells[2]) == pytest.approx(float(row["area_fraction"]), abs=0.05)
        assert cells[-2] == stats[row["phase"]]["count"]
        ecd = float(stats[row["phase"]]["ecd_mean_um"])
        if np.isnan(ecd):  # no particles measured (the matrix)
            assert cells[-1] == "-"
        else:
            assert float(cells[-1]) == pytest.approx(ecd, rel=5e-3)
    # the provenance sidecar names the checkpoint by its hash and the thresholds used
    import json

    from napari_samphase.core.sam.registry import MODELS

    prov = json.loads((d / "sample_micrograph_provenance.json").read_text())
    spec = MODELS["demo-synthetic"]
    assert prov["model"] == "demo-synthetic" and prov["checkpoint_sha256"] == spec.sha256
    assert prov["thresholds"]["pred_iou_thresh"] == spec.thresholds.pred_iou_thresh
    assert prov["pixel_size"]["um_per_px"] == pytest.approx(SAMPLE_PIXEL_SIZE.um)
    pixels = np.bincount(tifffile.imread(d / "sample_micrograph_phases.tif").ravel())
    assert float(table[-1]["area_um2"]) == pytest.approx(
        pixels[int(table[-1]["phase"])] * size.um**2, rel=1e-5
    )


def test_segment_loads_and_processes_one_image_at_a_time(sample, tmp_path, capsys, monkeypatch):
    """Each image is read, segmented and written before the next is read, and no
    earlier image is still alive when the next one is loaded (peak: one image)."""
    import gc
    import weakref

    from napari_samphase.core.image import io
    from napari_samphase.core.proposers.threshold import ThresholdProposer

    path, _ = sample
    second = tmp_path / "b.png"
    second.write_bytes(path.read_bytes())

    class Tracked(np.ndarray):  # plain ndarrays take no weak references
        pass

    events, alive = [], []
    real_load, real_propose = io.load_image, ThresholdProposer.propose

    def load(p, *a, **kw):
        gc.collect()
        events.append(("load", p.stem, sum(r() is not None for r in alive)))
        image = real_load(p, *a, **kw).view(Tracked)
        alive.append(weakref.ref(image))
        return image

    def propose(self, image, progress=None):
        events.append(("propose", image.shape))
        return real_propose(self, image, progress)

    monkeypatch.setattr(io, "load_image", load)
    monkeypatch.setattr(ThresholdProposer, "propose", propose)
    code, out, err = _run(
        capsys, "segment", path, second, "--proposer", "threshold", "--out", tmp_path / "res"
    )
    assert code == 0, err
    shape = (256, 256)
    assert events == [("load", "a", 0), ("propose", shape), ("load", "b", 0), ("propose", shape)]
    assert {"a_labels.tif", "b_labels.tif"} <= {p.name for p in (tmp_path / "res").iterdir()}


def test_missing_image_is_reported_before_any_image_is_read(sample, tmp_path, capsys, monkeypatch):
    from napari_samphase.core.image import io

    path, _ = sample
    loaded = []
    monkeypatch.setattr(io, "load_image", lambda p, *a, **kw: loaded.append(p))
    for images, message in (
        ([path, tmp_path / "missing.png"], "missing.png: no such file"),
        ([path, path], "share a file name"),
    ):
        code, _, err = _run(
            capsys, "segment", *images, "--proposer", "threshold", "--out", tmp_path / "res"
        )
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert loaded == [] and not (tmp_path / "res").exists()


def test_phase_mode_auto_picks_the_texture_mode_on_lamellae(tmp_path, capsys):
    """Phases of equal mean gray that differ by texture: the default (auto) must not
    fall back to clustering masks by intensity; every explicit mode is reachable."""
    from napari_samphase.core.evaluation.metrics import semantic_metrics
    from napari_samphase.core.image.kinds import KINDS

    image, truth = KINDS["lamellae"](3)
    path = tmp_path / "lam.png"
    write_png(path, image)
    k = int(truth.max()) + 1
    scores = {}
    for mode in ("auto", "masks", "pixels", "intensity"):
        out_dir = tmp_path / mode
        code, out, err = _run(
            capsys, "segment", path, "--proposer", "watershed", "--phases", k,
            "--phase-mode", mode, "--background", "ignore", "--out", out_dir,
        )  # fmt: skip
        assert code == 0, err
        picked = out.split(" phases by ")[1].split(" ")[0]
        assert picked == ("pixels" if mode == "auto" else mode)
        pred = tifffile.imread(out_dir / "lam_phases.tif")
        scores[mode] = semantic_metrics(pred, truth)["miou"]
    assert scores["auto"] == scores["pixels"]
    assert scores["pixels"] > max(scores["masks"], scores["intensity"]) + 0.2


def test_unknown_phase_mode_is_one_line(sample, tmp_path, capsys):
    path, _ = sample
    code, out, err = _run(
        capsys, "segment", path, "--proposer", "threshold", "--phases", "3",
        "--phase-mode", "colours", "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 1 and "phase mode" in err and "pixels" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("mode", ["pixels", "intensity", "masks"])
def test_mask_phases_table_describes_the_written_masks(sample, tmp_path, capsys, mode):
    """Every mask of NAME_labels.tif has one row in NAME_mask_phases.csv, and its phase
    is the phase most of its pixels have in NAME_phases.tif, whatever the phase mode
    (the pixel modes make their own regions; the table must not list those ids)."""
    import csv

    path, _ = sample
    out = tmp_path / mode
    code, _, err = _segment_phases(capsys, path, out, "--phase-mode", mode)
    assert code == 0, err
    labels = tifffile.imread(out / "a_labels.tif")
    phases = tifffile.imread(out / "a_phases.tif")
    with open(out / "a_mask_phases.csv") as fh:
        rows = {int(r["id"]): int(r["phase"]) for r in csv.DictReader(fh)}
    ids = np.unique(labels[labels > 0])
    assert sorted(rows) == ids.tolist()
    for i in ids:
        majority = np.bincount(phases[labels == i]).argmax()
        assert rows[int(i)] == majority, (i, rows[int(i)], majority)


def test_evaluate_panoptic(sample, tmp_path, capsys):
    """PQ of a prediction equal to the truth is 1; without one particle, that phase
    loses exactly one true positive to a false negative (COCO's counting)."""
    import csv

    from napari_samphase.core.evaluation.panoptic import panoptic_quality
    from napari_samphase.core.outputs.panoptic import panoptic_from_phases

    _, m = sample
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    tifffile.imwrite(truth / "a_phases.tif", m.phases.astype(np.uint8))
    tifffile.imwrite(truth / "a_labels.tif", m.instances.astype(np.uint16))
    # the prediction's phase ids are permuted, as an unsupervised clustering's are
    perm = np.array([0, 2, 3, 1], np.uint8)[: int(m.phases.max()) + 1]
    tifffile.imwrite(pred / "a_phases.tif", perm[m.phases])
    tifffile.imwrite(pred / "a_labels.tif", m.instances.astype(np.uint16))
    out_csv = tmp_path / "pq.csv"
    code, out, err = _run(
        capsys, "evaluate", "--pred", pred, "--truth", truth, "--panoptic", "--out", out_csv
    )
    assert code == 0, err
    with open(out_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["image"] for r in rows] == ["a", "all"]
    assert float(rows[0]["pq"]) == pytest.approx(1.0)
    assert "pq" in out.splitlines()[0]

    gone = int(np.unique(m.instances)[5])
    phases = np.where(m.instances == gone, 0, m.phases)
    tifffile.imwrite(pred / "a_phases.tif", perm[phases])
    tifffile.imwrite(pred / "a_labels.tif", np.where(m.instances == gone, 0, m.instances))
    code, _, err = _run(
        capsys, "evaluate", "--pred", pred, "--truth", truth, "--panoptic", "--out", out_csv
    )
    assert code == 0, err
    with open(out_csv) as fh:
        row = next(csv.DictReader(fh))
    expected = panoptic_quality(
        panoptic_from_phases(phases, np.where(m.instances == gone, 0, m.instances)),
        panoptic_from_phases(m.phases, m.instances),
    )
    assert int(row["fn"]) == 1 and int(row["fp"]) == 0
    assert float(row["pq"]) == pytest.approx(expected["pq"], abs=1e-4)
    assert float(row["pq"]) < 1.0


def test_stuff_phases_are_the_users_choice_and_the_same_in_every_image(sample, tmp_path, capsys):
    import json

    path, m = sample
    out = tmp_path / "s"
    code, _, err = _segment_phases(capsys, path, out, "--stuff", "1")
    assert code == 0, err
    cats = {
        c["id"]: c["isthing"]
        for c in json.loads((out / "a_panoptic.json").read_text())["categories"]
    }
    assert not cats[1] and all(cats[c] for c in cats if c != 1)  # COCO: isthing 0 or 1

    # two truths, one without a single background pixel: phase 0 is stuff in both (it
    # is absent from b), so the pooled row adds like with like
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    full = np.where(m.phases == 0, 1, m.phases).astype(np.uint8)
    for stem, phases in (("a", m.phases.astype(np.uint8)), ("b", full)):
        tifffile.imwrite(truth / f"{stem}_phases.tif", phases)
        tifffile.imwrite(truth / f"{stem}_labels.tif", m.instances.astype(np.uint16))
        tifffile.imwrite(pred / f"{stem}_phases.tif", phases)
        tifffile.imwrite(pred / f"{stem}_labels.tif", m.instances.astype(np.uint16))
    code, _, err = _run(capsys, "evaluate", "--pred", pred, "--truth", truth, "--panoptic")
    assert code == 0, err
    tifffile.imwrite(truth / "c_phases.tif", m.phases.astype(np.uint8))  # never predicted
    code, _, err = _run(capsys, "evaluate", "--pred", pred, "--truth", truth, "--panoptic")
    assert code == 0 and "1 ground-truth image(s) have no prediction" in err and ": c" in err
