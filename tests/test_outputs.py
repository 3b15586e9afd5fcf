"""COCO export, provenance sidecar, size histograms and the phase table in units."""

import json
from datetime import datetime

import numpy as np
import pytest

from napari_samphase.core.image.units import PixelSize
from napari_samphase.core.outputs.coco import coco_instances, rle_encode, write_coco
from napari_samphase.core.outputs.histogram import (
    draw_size_histogram,
    histogram_table,
    save_size_histogram,
)
from napari_samphase.core.outputs.provenance import provenance, write_provenance
from napari_samphase.core.outputs.render import phase_color


def _instances():
    """Irregular, non-overlapping instances of two phases (3 is a ring with a hole,
    5 touches the image border, 7 is a single pixel), on a non-square image so that
    row- and column-major orders differ."""
    rng = np.random.default_rng(3)
    labels = np.zeros((40, 57), np.int32)
    labels[2:9, 3:20] = 1
    labels[12:30, 30:33] = 2
    labels[20:35, 5:20] = 3
    labels[24:30, 10:14] = 0  # a hole
    labels[0:6, 50:57] = 5  # on the border
    labels[38, 1] = 7
    blob = rng.random((10, 12)) > 0.4
    labels[28:38, 40:52][blob] = 9
    phase_of = {1: 1, 2: 2, 3: 1, 5: 2, 7: 1, 9: 2}
    return labels, phase_of


@pytest.mark.parametrize("compressed", [True, False])
def test_coco_reloads_with_pycocotools(tmp_path, compressed):
    from pycocotools.coco import COCO

    labels, phase_of = _instances()
    coco = coco_instances(
        labels,
        phase_of,
        categories={1: "gamma prime", 2: "carbide"},
        file_name="a.tif",
        pixel_size=PixelSize.parse("12.5nm"),
        compressed=compressed,
    )
    path = tmp_path / "a_coco.json"
    write_coco(coco, path)
    api = COCO(str(path))
    assert api.getImgIds() == [1]
    img = api.loadImgs(1)[0]
    assert (img["height"], img["width"], img["file_name"]) == (40, 57, "a.tif")
    cats = {c["id"]: c["name"] for c in api.loadCats(api.getCatIds())}
    assert cats == {1: "gamma prime", 2: "carbide"}
    anns = api.loadAnns(api.getAnnIds(imgIds=[1]))
    assert sorted(a["instance_id"] for a in anns) == sorted(phase_of)
    for ann in anns:
        i = ann["instance_id"]
        mask = labels == i
        assert np.array_equal(api.annToMask(ann).astype(bool), mask), i
        assert ann["category_id"] == phase_of[i]
        assert ann["area"] == int(mask.sum())
        rows, cols = np.nonzero(mask)
        x, y = cols.min(), rows.min()
        assert ann["bbox"] == [x, y, cols.max() - x + 1, rows.max() - y + 1]
        assert ann["iscrowd"] == 0
        assert isinstance(ann["segmentation"]["counts"], str if compressed else list)
    assert json.loads(path.read_text())["info"]["pixel_size_um"] == pytest.approx(0.0125)


def test_coco_default_categories_and_without_phases():
    from pycocotools import mask as mask_utils

    labels, phase_of = _instances()
    coco = coco_instances(labels, phase_of)
    assert [c["name"] for c in coco["categories"]] == ["phase 1", "phase 2"]
    assert coco["info"]["pixel_size_um"] is None
    # the RLE is COCO's own: pycocotools decodes ours and encodes the same string
    for ann in coco["annotations"]:
        mask = np.asfortranarray((labels == ann["instance_id"]).astype(np.uint8))
        ours = {**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(ours), mask)
        assert mask_utils.encode(mask)["counts"].decode() == ann["segmentation"]["counts"]
    plain = coco_instances(labels)
    assert [c["name"] for c in plain["categories"]] == ["particle"]
    assert {a["category_id"] for a in plain["annotations"]} == {1}
    assert len(plain["annotations"]) == len(phase_of)


def test_rle_of_edge_cases():
    assert rle_encode(np.zeros((3, 4), bool), compressed=False)["counts"] == [12]
    full = rle_encode(np.ones((3, 4), bool), compressed=False)
    assert full["counts"] == [0, 12] and full["size"] == [3, 4]
    m = np.zeros((2, 3), bool)
    m[1, 0] = m[0, 1] = True  # column-major: 0 1 | 1 0 | 0 0
    assert rle_encode(m, compressed=False)["counts"] == [1, 2, 3]


def test_provenance_fields(tmp_path):
    from napari_samphase import __version__

    prov = provenance(
        model="demo-synthetic",
        checkpoint_sha256="ab" * 32,
        thresholds={"pred_iou_thresh": np.float32(0.5), "stability_thresh": 0.9},
        proposer="sam",
        features="default",
        k=np.int64(4),
        seed=0,
        phase_mode="masks",
        pixel_size=PixelSize.parse("12.5 nm"),
        image="a.tif",
        n_phases=np.int64(4),
    )
    assert prov["package"] == "napari-samphase" and prov["package_version"] == __version__
    assert prov["pixel_size"] == {"um_per_px": pytest.approx(0.0125), "source": "--pixel-size"}
    assert prov["checkpoint_sha256"] == "ab" * 32 and prov["k"] == 4
    assert prov["thresholds"]["pred_iou_thresh"] == pytest.approx(0.5)
    assert prov["image"] == "a.tif" and prov["n_phases"] == 4
    assert datetime.fromisoformat(prov["created"]).utcoffset().total_seconds() == 0
    path = tmp_path / "p.json"
    write_provenance(prov, path)
    back = json.loads(path.read_text())
    assert back == json.loads(json.dumps(prov))
    assert back["model"] == "demo-synthetic" and back["seed"] == 0

    unknown = provenance(model="vit_b", pixel_size=PixelSize.pixels())
    assert unknown["pixel_size"] == {"um_per_px": None, "source": "unknown"}
    assert unknown["checkpoint_sha256"] is None  # said, not left out


def _sizes():
    rng = np.random.default_rng(0)
    return {1: rng.lognormal(0.0, 0.5, 57), 2: rng.lognormal(1.0, 0.3, 23), 3: np.array([])}


@pytest.mark.parametrize("bins", ["log", "linear"])
def test_histogram_table_counts_every_size_once(bins):
    sizes = _sizes()
    table = histogram_table(sizes, "um", bins=bins, n_bins=12)
    assert list(table) == ["phase", "bin_low_um", "bin_high_um", "count"]
    for p, values in sizes.items():
        rows = table["phase"] == p
        assert table["count"][rows].sum() == len(values)
        if len(values):  # each count is the sizes between its edges (last edge closed)
            low, high = table["bin_low_um"][rows], table["bin_high_um"][rows]
            last = high[-1]
            inside = [
                (values >= lo) & ((values < hi) | (hi == last))
                for lo, hi in zip(low, high, strict=True)
            ]
            assert [int(x.sum()) for x in inside] == table["count"][rows].tolist()
    # every phase on the same bins, so phases compare bin by bin
    low1 = table["bin_low_um"][table["phase"] == 1]
    assert np.array_equal(low1, table["bin_low_um"][table["phase"] == 2])
    steps = np.diff(np.log(low1) if bins == "log" else low1)
    assert np.allclose(steps, steps[0])


def test_histogram_of_measured_particles(micrograph):
    """The sizes of the particles that are measured (not on the border) all land in
    the table."""
    from napari_samphase.core.measure.particles import particle_table

    px = PixelSize.parse("50nm")
    parts = particle_table(micrograph.instances, px, micrograph.phases)
    keep = ~parts["touches_border"]
    sizes = {
        int(p): parts["ecd_um"][keep & (parts["phase"] == p)] for p in np.unique(parts["phase"])
    }
    table = histogram_table(sizes, px.length_unit)
    assert table["count"].sum() == int(keep.sum()) > 10
    assert table["bin_low_um"].min() <= parts["ecd_um"][keep].min()


def test_histogram_is_drawn_in_phase_colours(tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    draw_size_histogram(ax, _sizes(), "um", highlight=2)
    assert ax.get_xlabel() == "ECD (µm)" and ax.get_ylabel() == "particles"
    assert ax.get_xscale() == "log"
    drawn = {a.get_label(): a for a in ax.patches}
    assert set(drawn) == {"phase 1", "phase 2"}  # an empty phase draws nothing
    assert np.allclose(drawn["phase 2"].get_edgecolor()[:3], phase_color(2))
    assert drawn["phase 2"].get_linewidth() > drawn["phase 1"].get_linewidth()
    assert drawn["phase 1"].get_alpha() < drawn["phase 2"].get_alpha()
    path = tmp_path / "h.png"
    save_size_histogram(_sizes(), "px", path, bins="linear")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_phase_table_in_units():
    from napari_samphase.core.outputs.report import phase_table

    phases = np.zeros((64, 80), np.uint8)
    phases[8:40, 8:30] = 1
    phases[44:60, 50:78] = 2
    one = phase_table(phases, pixel_size=PixelSize.parse("1nm"))
    two = phase_table(phases, pixel_size=PixelSize.parse("2nm"))
    assert list(one)[:6] == [
        "phase",
        "color",
        "area_um2",
        "area_fraction",
        "area_fraction_ci_low",
        "area_fraction_ci_high",
    ]
    counts = np.bincount(phases.ravel())
    assert one["area_um2"] == pytest.approx(counts * 1e-6)
    assert two["area_um2"] == pytest.approx(4 * one["area_um2"])
    assert one["area_fraction"] == pytest.approx(100 * counts / phases.size)
    assert (one["area_fraction_ci_low"] <= one["area_fraction"]).all()
    assert (one["area_fraction"] <= one["area_fraction_ci_high"]).all()
    assert (one["area_fraction_ci_high"] <= 100).all() and (one["area_fraction_ci_low"] >= 0).all()
    px = phase_table(phases)
    assert "area_px2" in px and px["area_px2"] == pytest.approx(counts)
