"""``samphase segment`` measures in physical units: the pixel size from --pixel-size or
the file, particle and phase tables, size histograms, COCO, provenance, and the
summary over several images."""

import csv
import json

import numpy as np
import pytest
import tifffile

from napari_samphase.cli import main
from napari_samphase.core.image.io import write_png
from napari_samphase.core.image.synthetic import make_micrograph

# weight-free masks, phases from the masks' gray levels: quick and deterministic
FAST = ["--proposer", "superpixels", "--phases", "4", "--phase-mode", "masks",
        "--features", "intensity", "--background", "ignore"]  # fmt: skip


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("in")
    out = {}
    for stem, seed in (("a", 11), ("b", 12)):
        m = make_micrograph((192, 224), n_particles=20, seed=seed)
        write_png(d / f"{stem}.png", m.image)
        out[stem] = (d / f"{stem}.png", m)
    return out


def _run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _csv(path) -> dict[str, np.ndarray]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    cols = {}
    for name in rows[0]:
        values = [r[name] for r in rows]
        try:
            cols[name] = np.array([float(v) for v in values])
        except ValueError:
            cols[name] = np.array(values)
    return cols


@pytest.fixture(scope="module")
def runs(images, tmp_path_factory):
    """One image segmented at 1 nm/px, at 2 nm/px, with an unknown size, and from a
    TIFF that carries 2 nm/px in its resolution tags."""
    path, m = images["a"]
    root = tmp_path_factory.mktemp("runs")
    tif = root / "in" / "a.tif"
    tif.parent.mkdir()
    # 2 nm = 2e-7 cm: 5e6 pixels per centimetre, the TIFF's own unit
    tifffile.imwrite(tif, m.image, resolution=(5e6, 5e6), resolutionunit="CENTIMETER")
    out = {}
    for name, source, extra in (
        ("1nm", path, ["--pixel-size", "1nm"]),
        ("2nm", path, ["--pixel-size", "0.002 µm"]),
        ("px", path, []),
        ("tif", tif, []),
    ):
        code = main(["-q", "segment", str(source), *FAST, *extra, "--out", str(root / name)])
        assert code == 0
        out[name] = root / name
    return out


def test_areas_scale_with_the_square_of_the_pixel_size(runs):
    one, two = _csv(runs["1nm"] / "a_particles.csv"), _csv(runs["2nm"] / "a_particles.csv")
    assert np.array_equal(one["id"], two["id"]) and len(one["id"]) > 10
    assert two["area_um2"] == pytest.approx(4 * one["area_um2"], rel=1e-5)
    assert two["ecd_um"] == pytest.approx(2 * one["ecd_um"], rel=1e-5)
    assert two["perimeter_um"] == pytest.approx(2 * one["perimeter_um"], rel=1e-5)
    assert two["aspect_ratio"] == pytest.approx(one["aspect_ratio"])
    s1, s2 = _csv(runs["1nm"] / "a_phase_stats.csv"), _csv(runs["2nm"] / "a_phase_stats.csv")
    assert s2["ecd_mean_um"] == pytest.approx(2 * s1["ecd_mean_um"], rel=1e-5, nan_ok=True)
    assert s2["area_mean_um2"] == pytest.approx(4 * s1["area_mean_um2"], rel=1e-5, nan_ok=True)
    density = "number_density_per_um2"
    assert s2[density] == pytest.approx(s1[density] / 4, rel=1e-5)
    assert s2["area_fraction_pct"] == pytest.approx(s1["area_fraction_pct"])
    t1, t2 = _csv(runs["1nm"] / "a_phase_table.csv"), _csv(runs["2nm"] / "a_phase_table.csv")
    assert t2["area_um2"] == pytest.approx(4 * t1["area_um2"], rel=1e-5)
    h1, h2 = _csv(runs["1nm"] / "a_sizes.csv"), _csv(runs["2nm"] / "a_sizes.csv")
    assert h2["bin_low_um"] == pytest.approx(2 * h1["bin_low_um"], rel=1e-5)
    assert np.array_equal(h1["count"], h2["count"])


def test_unknown_size_reports_pixels(runs, images, capsys, tmp_path):
    px, one = _csv(runs["px"] / "a_particles.csv"), _csv(runs["1nm"] / "a_particles.csv")
    assert "area_px2" in px and "ecd_px" in px and "area_um2" not in px
    assert one["area_um2"] == pytest.approx(px["area_px2"] * 1e-6, rel=1e-5)
    # the particles are the panoptic things: their pixel areas are the label counts
    from napari_samphase.core.outputs.panoptic import phase_and_instance, read_panoptic

    _, inst = phase_and_instance(
        read_panoptic(runs["px"] / "a_panoptic.png", runs["px"] / "a_panoptic.json")
    )
    assert np.array_equal(px["area_px2"], np.bincount(inst.ravel())[px["id"].astype(int)])
    stats = _csv(runs["px"] / "a_phase_stats.csv")
    assert "number_density_per_px2" in stats and "ecd_mean_px" in stats
    assert "area_px2" in _csv(runs["px"] / "a_phase_table.csv")
    assert "bin_low_px" in _csv(runs["px"] / "a_sizes.csv")
    prov = json.loads((runs["px"] / "a_provenance.json").read_text())
    assert prov["pixel_size"] == {"um_per_px": None, "source": "unknown"}
    # said once per run, naming the images, however many there are
    paths = [images[s][0] for s in ("a", "b")]
    code, out, err = _run(capsys, "segment", *paths, *FAST, "--out", tmp_path / "o")
    assert code == 0
    notes = [line for line in err.splitlines() if "pixel size unknown" in line]
    assert len(notes) == 1 and "a, b" in notes[0] and "--pixel-size" in notes[0]


def test_tiff_resolution_tags_give_the_same_numbers(runs):
    from napari_samphase.core.image.units import read_pixel_size

    for name in ("particles", "phase_stats", "phase_table"):
        tif, given = _csv(runs["tif"] / f"a_{name}.csv"), _csv(runs["2nm"] / f"a_{name}.csv")
        assert list(tif) == list(given)
        for col in tif:
            if tif[col].dtype.kind == "f":
                assert tif[col] == pytest.approx(given[col], rel=1e-6, nan_ok=True), col
    # and the label images written carry the size on
    for stem in ("a_labels", "a_phases"):
        assert read_pixel_size(runs["tif"] / f"{stem}.tif").um == pytest.approx(0.002)
        assert read_pixel_size(runs["2nm"] / f"{stem}.tif").um == pytest.approx(0.002)
    prov = json.loads((runs["tif"] / "a_provenance.json").read_text())
    assert prov["pixel_size"]["um_per_px"] == pytest.approx(0.002)
    assert prov["pixel_size"]["source"] != "--pixel-size"


def test_outputs_of_one_image(runs):
    from pycocotools.coco import COCO

    out = runs["1nm"]
    names = {p.name for p in out.iterdir()}
    new = {"particles.csv", "phase_stats.csv", "sizes.png", "sizes.csv", "coco.json",
           "provenance.json"}  # fmt: skip
    assert {f"a_{n}" for n in new} <= names
    parts = _csv(out / "a_particles.csv")
    api = COCO(str(out / "a_coco.json"))
    anns = api.loadAnns(api.getAnnIds())
    assert sorted(a["instance_id"] for a in anns) == sorted(parts["id"].astype(int).tolist())
    phase_of = dict(zip(parts["id"].astype(int), parts["phase"].astype(int), strict=True))
    assert all(a["category_id"] == phase_of[a["instance_id"]] for a in anns)
    assert {c["name"] for c in api.loadCats(api.getCatIds())} >= {"phase 1", "phase 2"}
    # the histogram counts every particle measured: those off the border
    sizes = _csv(out / "a_sizes.csv")
    assert sizes["count"].sum() == (parts["touches_border"] == "False").sum()
    stats = _csv(out / "a_phase_stats.csv")
    assert sizes["count"].sum() == stats["count_measured"].sum()
    prov = json.loads((out / "a_provenance.json").read_text())
    assert prov["proposer"] == "superpixels" and prov["k"] == 4 and prov["seed"] == 0
    assert prov["phase_mode"] == "masks" and prov["features"] == "intensity"
    assert prov["pixel_size"] == {"um_per_px": pytest.approx(0.001), "source": "--pixel-size"}
    assert prov["exclude_border"] is True and prov["package_version"]


def test_include_border_measures_every_particle(runs, images, capsys, tmp_path):
    path, _ = images["a"]
    code, _, err = _run(capsys, "segment", path, *FAST, "--include-border", "--out", tmp_path / "o")
    assert code == 0, err
    parts = _csv(tmp_path / "o" / "a_particles.csv")
    stats = _csv(tmp_path / "o" / "a_phase_stats.csv")
    assert (parts["touches_border"] == "True").any()
    assert stats["count_measured"].sum() == len(parts["id"])
    assert _csv(tmp_path / "o" / "a_sizes.csv")["count"].sum() == len(parts["id"])
    excluded = _csv(runs["px"] / "a_phase_stats.csv")
    assert excluded["count_measured"].sum() < stats["count_measured"].sum()
    assert np.array_equal(excluded["count"], stats["count"])  # counted either way


def test_several_images_give_a_phase_summary(images, capsys, tmp_path):
    from scipy import stats

    paths = [images[s][0] for s in ("a", "b")]
    out = tmp_path / "o"
    code, printed, err = _run(capsys, "segment", *paths, *FAST, "--pixel-size", "5nm", "--out", out)
    assert code == 0, err
    summary = _csv(out / "phase_summary.csv")
    assert list(summary) == [
        "phase",
        "n_images",
        "area_fraction_mean",
        "area_fraction_ci_low",
        "area_fraction_ci_high",
        "area_fraction_a",
        "area_fraction_b",
    ]
    tables = {s: _csv(out / f"{s}_phase_table.csv") for s in ("a", "b")}
    for i, p in enumerate(summary["phase"]):
        per = []
        for s, t in tables.items():
            f = t["area_fraction"][t["phase"] == p]
            per.append(float(f[0]) if len(f) else 0.0)
            assert summary[f"area_fraction_{s}"][i] == pytest.approx(per[-1], abs=1e-4)
        mean = np.mean(per)
        half = stats.t.ppf(0.975, 1) * np.std(per, ddof=1) / np.sqrt(2)
        assert summary["area_fraction_mean"][i] == pytest.approx(mean, abs=1e-4)
        assert summary["area_fraction_ci_low"][i] == pytest.approx(max(mean - half, 0), abs=1e-3)
        assert summary["area_fraction_ci_high"][i] == pytest.approx(min(mean + half, 100), abs=1e-3)
    assert summary["n_images"].tolist() == [2] * len(summary["phase"])
    # each image's line shows its fractions with their interval
    line = next(x for x in printed.splitlines() if x.startswith("a: "))
    t = tables["a"]
    first = f"{int(t['phase'][0])}: {t['area_fraction'][0]:.1f} "
    first += f"[{t['area_fraction_ci_low'][0]:.1f}, {t['area_fraction_ci_high'][0]:.1f}]"
    assert "95% CI" in line and first in line and "0.005 um/px" in line


@pytest.mark.parametrize("value", ["12.5", "-3nm", "5 kg", "twelve"])
def test_bad_pixel_size_is_one_line_and_no_output(images, capsys, tmp_path, value):
    path, _ = images["a"]
    code, _, err = _run(
        capsys, "segment", path, *FAST, f"--pixel-size={value}", "--out", tmp_path / "o"
    )
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "--pixel-size" in err
    assert not (tmp_path / "o").exists() and list(tmp_path.glob(".o.*")) == []


def test_without_phases_particles_are_the_masks(images, capsys, tmp_path):
    path, _ = images["a"]
    out = tmp_path / "o"
    args = ["--proposer", "superpixels", "--pixel-size", "10nm"]
    code, _, err = _run(capsys, "segment", path, *args, "--out", out)
    assert code == 0, err
    labels = tifffile.imread(out / "a_labels.tif")
    parts = _csv(out / "a_particles.csv")
    ids = parts["id"].astype(int)
    assert ids.tolist() == np.unique(labels[labels > 0]).tolist()
    assert parts["area_um2"] == pytest.approx(np.bincount(labels.ravel())[ids] * 1e-4, rel=1e-5)
    coco = json.loads((out / "a_coco.json").read_text())
    assert len(coco["annotations"]) == len(ids)
    assert json.loads((out / "a_provenance.json").read_text())["k"] is None
    assert not (out / "a_phase_stats.csv").exists()
