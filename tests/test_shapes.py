"""Every proposer and the CLI on portrait, landscape and square micrographs.

The portrait scene is the landscape one transposed, so a proposer that finds the
particles in one and not the other mixes up rows and columns somewhere.
"""

import numpy as np
import pytest
import tifffile

from napari_samphase.core.evaluation.metrics import instance_metrics
from napari_samphase.core.image.synthetic import MATRIX, PARTICLE_PHASES, make_micrograph
from napari_samphase.core.proposers import PROPOSERS, make_proposer

# Dark particles on the matrix: every proposer, the small demo SAM included, finds
# 9-10 of the 10 in the landscape and square scenes (measured); 0.7 leaves margin.
STYLES = (MATRIX, PARTICLE_PHASES[0])
MIN_RECALL = 0.7
SAM_OPTIONS = {"model": "demo-synthetic", "device": "cpu", "points_per_side": 8}


def _scene(shape, seed=0):
    return make_micrograph(shape, n_particles=10, radius=(7, 12), styles=STYLES, seed=seed)


@pytest.fixture(scope="module")
def scenes():
    land = _scene((96, 144))
    square = _scene((112, 112))
    return {
        "portrait": (np.ascontiguousarray(land.image.T), np.ascontiguousarray(land.instances.T)),
        "landscape": (land.image, land.instances),
        "square": (square.image, square.instances),
    }


@pytest.fixture(scope="module")
def proposers():
    """One proposer per name for the module: the demo SAM is loaded once."""
    import torch

    torch.set_num_threads(2)
    return {
        name: make_proposer(name, **(SAM_OPTIONS if name == "sam" else {})) for name in PROPOSERS
    }


@pytest.mark.parametrize("orientation", ["portrait", "landscape", "square"])
@pytest.mark.parametrize("name", list(PROPOSERS))
def test_every_proposer_finds_the_particles_in_any_orientation(
    scenes, proposers, name, orientation
):
    image, truth = scenes[orientation]
    seg = proposers[name].propose(image)
    assert seg.labels.shape == image.shape
    assert seg.n_masks > 0
    assert instance_metrics(seg.labels, truth)["recall50"] >= MIN_RECALL
    # the per-mask table describes the label image (boxes in rows, columns order)
    t = seg.table
    for i, mask_id in enumerate(t["id"]):
        rows, cols = np.nonzero(seg.labels == mask_id)
        box = (t["bbox_row0"][i], t["bbox_col0"][i], t["bbox_row1"][i], t["bbox_col1"][i])
        assert box == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)


@pytest.mark.parametrize(
    "proposer",
    [
        ["--proposer", "threshold"],
        ["--model", "demo-synthetic", "--device", "cpu", "--points-per-side", "8"],
    ],
    ids=["threshold", "sam"],
)
def test_cli_segment_on_a_portrait_image(scenes, tmp_path, capsys, proposer):
    from napari_samphase.cli import main
    from napari_samphase.core.image.io import write_png

    image, truth = scenes["portrait"]
    write_png(tmp_path / "tall.png", image)
    code = main(
        [
            "-q",
            "segment",
            str(tmp_path / "tall.png"),
            *proposer,
            "--phases",
            "2",
            "--out",
            str(tmp_path / "res"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    labels = tifffile.imread(tmp_path / "res" / "tall_labels.tif")
    assert labels.shape == image.shape
    assert instance_metrics(labels, truth)["recall50"] >= MIN_RECALL
    assert tifffile.imread(tmp_path / "res" / "tall_phases.tif").shape == image.shape
