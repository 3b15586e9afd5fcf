"""The README's first command is right on its own sample, and the same pipeline holds
on other generated micrographs."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_samphase.core.evaluation.metrics import semantic_metrics
from napari_samphase.core.image.io import read_labels
from napari_samphase.core.image.synthetic import make_micrograph, sample_micrograph


def thin_rings(labels, width=3.0, hug=0.8, lines=0.25):
    """Ids of masks that are thin rings or crescents around another mask B: no pixel
    farther than ``width`` px from the mask's edge, ``hug`` of its pixels within
    ``width`` px of B, and lining at least ``lines`` of B's border. What
    segment-everything's overlaps leave at a particle's edge; independent of the
    package's own clean-up."""
    rings = []
    for i in np.unique(labels)[1:]:
        mask = labels == i
        if ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1].max() > width:
            continue
        near = ndi.binary_dilation(mask, iterations=int(width))
        for j in np.unique(labels[near & ~mask]):
            if j in (0, i):
                continue
            other = labels == j
            border = other & ~ndi.binary_erosion(other)
            dist = ndi.distance_transform_edt(~other)
            if (dist[mask] <= width).mean() >= hug and near[border].mean() >= lines:
                rings.append(int(i))
                break
    return rings


@pytest.mark.slow
def test_demo_finds_the_samples_phases(tmp_path, capsys):
    from napari_samphase.cli import main

    out = tmp_path / "demo"
    assert main(["-q", "demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    phases = read_labels(out / "sample_micrograph_phases.tif")
    score = semantic_metrics(phases, sample_micrograph().phases)
    # Hungarian one-to-one: K=4 phases for the matrix and the three particle phases
    assert score["miou"] >= 0.9, score["iou"]
    assert f"demo: mIoU {score['miou']:.2f} against the sample's known phases" in printed
    # then the phase table in physical units: the phases' areas fill the 12.8 um field
    from napari_samphase.core.image.synthetic import SAMPLE_PIXEL_SIZE

    lines = printed.splitlines()
    at = next(i for i, line in enumerate(lines) if "area (µm²)" in line)
    rows = [line.split() for line in lines[at + 1 :] if line.strip()]
    field = (256 * SAMPLE_PIXEL_SIZE.um) ** 2
    assert sum(float(r[1]) for r in rows) == pytest.approx(field, rel=0.01)
    assert sum(float(r[2]) for r in rows) == pytest.approx(100, abs=0.3)
    labels = read_labels(out / "sample_micrograph_labels.tif")
    assert thin_rings(labels) == []


def _pipeline(m, session, points_per_side=16):
    from napari_samphase.core.phases.clustering import find_phases
    from napari_samphase.core.proposers import make_proposer

    proposer = make_proposer("sam", session=session, points_per_side=points_per_side, min_area=20)
    seg = proposer.propose(m.image)
    k = len(m.phase_names)
    return seg, find_phases(m.image, seg.labels, k=k, background="class")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_same_pipeline_on_other_micrographs(seed, demo_session):
    m = make_micrograph((256, 256), n_particles=20, radius=(8.0, 24.0), seed=seed)
    seg, res = _pipeline(m, demo_session)
    # a coarser prompt grid than the demo's (16 per side), to stay quick
    assert semantic_metrics(res.phase_labels, m.phases)["miou"] >= 0.85
    assert thin_rings(seg.labels) == []
