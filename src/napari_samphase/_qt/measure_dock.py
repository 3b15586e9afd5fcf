"""The measurement dock: per-phase statistics (area fraction with its 95% interval,
counts, number density, sizes) and the size distribution of each phase, in the image's
units.

It follows a :class:`PhaseMapper` (``mapper.subscribe``): a re-clustering recomputes at
once, mask edits after a short pause (a brush stroke must not measure every particle),
a highlighted phase only redraws. It can also be driven directly
(:meth:`MeasureDock.update`, :meth:`MeasureDock.set_highlight`), e.g. on any Labels
layer by :func:`measure_selected_labels` (Layers > Measure).
"""

from __future__ import annotations

import numpy as np
from napari.viewer import Viewer
from qtpy.QtCore import QRect, Qt, QTimer
from qtpy.QtGui import QColor, QFont, QPalette, QRegion
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_samphase.core.errors import SamphaseError
from napari_samphase.core.image.units import PixelSize
from napari_samphase.core.outputs.histogram import UNIT_LABELS
from napari_samphase.core.outputs.render import phase_hex

BIN_CHOICES = ("log", "linear")
TABLE_ROWS = 10  # phases shown without scrolling
MAX_BINS = 40  # "auto" bins: about sqrt(particles), between 5 and this
EDIT_DELAY_MS = 400  # mask edits (brush strokes) are measured once they pause
# Maps larger than this are measured in a worker thread (about 3 s for 2048 x 2048 with
# 1500 particles on two cores): the viewer stays responsive meanwhile.
WORKER_PIXELS = 1_000_000
DOCK_NAME = "Phase measurements"


def _fmt(value, spec: str = ".3g") -> str:
    value = float(value)
    return "–" if not np.isfinite(value) else format(value, spec)


def _fraction(s, i, u) -> str:
    return (
        f"{_fmt(s['area_fraction_pct'][i], '.1f')} "
        f"[{_fmt(s['ci_low_pct'][i], '.1f')}, {_fmt(s['ci_high_pct'][i], '.1f')}]"
    )


def _minor_log_label(x, _pos) -> str:
    """Minor ticks of a log axis: only 2x and 5x a power of ten get a label."""
    mantissa = round(x / 10 ** np.floor(np.log10(x)), 6)
    return f"{x:g}" if mantissa in (2, 5) else ""


def _phase(s, i, u) -> str:
    return "background" if s["phase"][i] == 0 else str(s["phase"][i])


# Table columns: header ("{unit}": the length unit shown) -> (its tooltip, the text of
# row ``i`` of the statistics ``s``); ``u`` is the PixelSize, whose suffixes name the
# unit-carrying columns.
COLUMNS = {
    "phase": ("phase id (background: pixels in no phase)", _phase),
    "area % [95% CI]": (
        "area fraction of the image, with its 95% confidence interval from 4 x 4 blocks "
        "(see docs/measurements.md)",
        _fraction,
    ),
    "count (sized)": (
        "particles of the phase; in brackets those its sizes come from (border particles "
        "left out when excluded)",
        lambda s, i, u: f"{s['count'][i]} ({s['count_measured'][i]})",
    ),
    "per {unit}²": (
        "number density: particles per unit area (unbiased counting frame)",
        lambda s, i, u: _fmt(s[f"number_density{u.suffix(-2)}"][i]),
    ),
    "ECD mean ({unit})": (
        "mean equivalent-circle diameter, sqrt(4 area / pi)",
        lambda s, i, u: _fmt(s[f"ecd_mean{u.suffix()}"][i]),
    ),
    "D50 ({unit})": (
        "median equivalent-circle diameter (number-weighted)",
        lambda s, i, u: _fmt(s[f"ecd_d50{u.suffix()}"][i]),
    ),
}


class MeasureDock(QWidget):
    """Per-phase statistics and size histograms of one phase map.

    Parameters
    ----------
    viewer : napari.viewer.Viewer, optional
        The viewer it is docked in (not needed to drive it directly).
    mapper : PhaseMapper, optional
        Followed through ``mapper.subscribe``: ``("phases", run)`` measures the new
        phases, ``("masks", None)`` the edited masks, ``("highlight", phase)`` draws
        that phase bold.
    """

    def __init__(self, viewer=None, mapper=None, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.mapper = mapper
        self.phase_labels: np.ndarray | None = None
        self.instances: np.ndarray | None = None
        self.pixel_size = PixelSize.pixels()
        self.highlight: int | None = None
        self._source = (None, None)  # the arrays last given, as given (not copies)
        self._particles = None  # particle table of the current labels
        self._stats: dict[bool, dict] = {}  # exclude_border -> phase statistics
        self._generation = 0  # bumped by every update: a worker's stale result is dropped
        self._pending = False  # a worker is measuring the current labels
        self._worker = None
        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(EDIT_DELAY_MS)
        self._edit_timer.timeout.connect(self._measure_mapper)
        self._build()
        if mapper is not None:
            mapper.subscribe(self.notify)

    # -- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        root = QVBoxLayout(self)
        row = QHBoxLayout()
        self.bins_combo = QComboBox()
        self.bins_combo.addItems(BIN_CHOICES)
        self.bins_combo.setToolTip("size bins: log-spaced (log axis) or linear")
        self.bins_combo.currentTextChanged.connect(self.redraw)
        self.n_bins_spin = QSpinBox()
        self.n_bins_spin.setRange(0, 200)
        self.n_bins_spin.setSpecialValueText("auto")  # at 0: about sqrt(particles)
        self.n_bins_spin.setSuffix(" bins")
        self.n_bins_spin.valueChanged.connect(self.redraw)
        self.exclude_border = QCheckBox("exclude border particles")
        self.exclude_border.setChecked(True)
        self.exclude_border.setToolTip(
            "particles cut by the image edge are left out of sizes and shapes "
            "(they still count for area fractions)"
        )
        self.exclude_border.toggled.connect(self.redraw)
        row.addWidget(QLabel("bins"))
        row.addWidget(self.bins_combo)
        row.addWidget(self.n_bins_spin)
        row.addWidget(self.exclude_border)
        row.addStretch()
        root.addLayout(row)
        self.info = QLabel("find phases (or Layers > Measure on a labels layer) to measure")
        self.info.setWordWrap(True)
        root.addWidget(self.info)
        self.figure = Figure(figsize=(4.0, 2.8), dpi=90, layout="tight")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        self.ax = self.figure.add_subplot()
        root.addWidget(self.canvas, 1)  # the chart takes the room the dock is given
        self.table = QTableWidget(0, 1 + len(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self._set_headers()
        root.addWidget(self.table)
        self.export_btn = QPushButton("Export statistics CSV…")
        self.export_btn.clicked.connect(self._export_dialog)
        root.addWidget(self.export_btn)

    def _set_headers(self) -> None:
        unit = UNIT_LABELS.get(self.pixel_size.length_unit, self.pixel_size.length_unit)
        self.table.setHorizontalHeaderLabels(["", *(h.format(unit=unit) for h in COLUMNS)])
        for j, (tip, _) in enumerate(COLUMNS.values(), 1):
            self.table.horizontalHeaderItem(j).setToolTip(tip)

    # -- inputs ----------------------------------------------------------------------------
    def update(self, phase_labels=None, instances=None, pixel_size=None):
        """Measure ``phase_labels`` (2D, 0 = background) and show the result.

        Measured at once, or in a worker thread when the map has more than
        ``WORKER_PIXELS`` pixels (then shown when done). Called without arguments (or
        with a QRect / QRegion) it is Qt's ``QWidget.update``: schedule a repaint.

        Parameters
        ----------
        phase_labels : ndarray
            Phase of every pixel.
        instances : ndarray, optional
            The particles (instance masks); default: the connected components of each
            phase.
        pixel_size : PixelSize, optional
            Default: unknown (sizes in pixels).
        """
        if phase_labels is None or isinstance(phase_labels, (QRect, QRegion)):
            return super().update(*([] if phase_labels is None else [phase_labels]))
        self._source = (phase_labels, instances)
        self.phase_labels = np.asarray(phase_labels)
        self.instances = None if instances is None else np.asarray(instances)
        self.pixel_size = pixel_size if pixel_size is not None else PixelSize.pixels()
        self._particles, self._stats = None, {}
        self._generation += 1
        self._set_headers()
        if self.phase_labels.size > WORKER_PIXELS:
            self._measure_in_worker()
        else:
            self._pending = False
            self.redraw()
        return None

    def _measure_in_worker(self) -> None:
        from napari.qt.threading import create_worker

        from napari_samphase.core.measure import (
            particle_table,
            particles_of_phases,
            phase_statistics,
        )

        generation, size = self._generation, self.pixel_size
        exclude = self.exclude_border.isChecked()
        # copies: the masks layer may be painted while the worker reads them
        labels = self.phase_labels = np.array(self.phase_labels)
        instances = self.instances = None if self.instances is None else np.array(self.instances)

        def work():
            particles = particle_table(particles_of_phases(labels, instances), size, labels)
            stats = phase_statistics(
                labels, instances, size, exclude_border=exclude, particles=particles
            )
            return generation, exclude, particles, stats

        self._pending = True
        self.info.setText(f"measuring {labels.shape[0]} x {labels.shape[1]} pixels…")
        self._worker = create_worker(
            work,
            _connect={"returned": self._measured, "errored": lambda e: self._failed(generation, e)},
        )

    def _measured(self, result) -> None:
        generation, exclude, particles, stats = result
        if generation != self._generation:  # newer labels arrived meanwhile
            return
        self._particles, self._stats[exclude], self._pending = particles, stats, False
        self.redraw()

    def _failed(self, generation: int, exc: Exception) -> None:
        if generation == self._generation:
            self._pending = False
            self.info.setText(f"error: {exc}")

    def set_highlight(self, phase: int | None) -> None:
        """Draw ``phase`` bold (the others faded) and bold its row; None: no highlight."""
        self.highlight = None if phase is None else int(phase)
        self.redraw()

    def notify(self, kind: str, value) -> None:
        """A PhaseMapper notification (see the class docstring)."""
        if kind == "highlight":
            self.set_highlight(value)
        elif kind == "phases":
            self._edit_timer.stop()  # these phases supersede a pending mask edit
            result = getattr(value, "result", value)  # a PhaseRun or a bare PhaseResult
            size = self._mapper_pixel_size()
            given, masks = self._source
            if given is result.phase_labels and masks is result.labels and size == self.pixel_size:
                self.redraw()  # these very phases are measured already (the dock re-shown)
            else:
                self.update(result.phase_labels, result.labels, size)
        elif kind == "masks":
            self._edit_timer.start()

    def _mapper_pixel_size(self) -> PixelSize:
        size = getattr(self.mapper, "pixel_size", None)
        return size if isinstance(size, PixelSize) else PixelSize.pixels()

    def _measure_mapper(self) -> None:
        """The mapper's masks as they are now, with the phases of its last clustering
        (masks added since count as background until the next one)."""
        mapper = self.mapper
        result = getattr(mapper, "result", None)
        if result is None:
            return
        masks = mapper.masks_data() if hasattr(mapper, "masks_data") else result.labels
        if masks is None or np.shape(masks) != result.phase_labels.shape:
            return  # the masks layer was deleted or replaced by another size
        masks = np.asarray(masks)
        if np.array_equal(masks, result.labels):
            phase_labels = result.phase_labels
        else:
            phase_labels = np.where(masks > 0, result.phase_of(masks), 0)
        self.update(phase_labels, masks, self._mapper_pixel_size())

    # -- measuring -------------------------------------------------------------------------
    def particles(self) -> dict | None:
        """The particle table of the current labels (computed once per update)."""
        from napari_samphase.core.measure import particle_table, particles_of_phases

        if self.phase_labels is None:
            return None
        if self._particles is None:
            particles = particles_of_phases(self.phase_labels, self.instances)
            self._particles = particle_table(particles, self.pixel_size, self.phase_labels)
        return self._particles

    def statistics(self) -> dict | None:
        """Per-phase statistics under the current border rule (cached per rule)."""
        from napari_samphase.core.measure import phase_statistics

        if self.phase_labels is None:
            return None
        exclude = self.exclude_border.isChecked()
        if exclude not in self._stats:
            self._stats[exclude] = phase_statistics(
                self.phase_labels,
                self.instances,
                self.pixel_size,
                exclude_border=exclude,
                particles=self.particles(),  # measured once for both rules and the chart
            )
        return self._stats[exclude]

    def sizes_by_phase(self) -> dict[int, np.ndarray]:
        """Phase (> 0) -> equivalent-circle diameters of its particles, border ones left
        out when "exclude border particles" is ticked."""
        t = self.particles()
        if t is None:
            return {}
        ecd = np.asarray(t[f"ecd{self.pixel_size.suffix()}"], np.float64)
        keep = ~np.asarray(t["touches_border"], bool) if self.exclude_border.isChecked() else True
        phases = np.asarray(t["phase"])
        present = np.unique(self.phase_labels)
        return {int(p): ecd[(phases == p) & keep] for p in present[present > 0]}

    def n_bins(self, sizes: dict | None = None) -> int:
        """The bins chosen, or for "auto" about the square root of the particles sized
        (so a few dozen particles do not spread one per bin), between 5 and MAX_BINS."""
        chosen = self.n_bins_spin.value()
        if chosen:
            return chosen
        n = sum(len(v) for v in (self.sizes_by_phase() if sizes is None else sizes).values())
        return int(np.clip(np.ceil(np.sqrt(n)), 5, MAX_BINS))

    # -- showing ---------------------------------------------------------------------------
    def redraw(self, *_) -> None:
        """Redraw the histogram and the table from the cached measurements."""
        from napari_samphase.core.outputs.histogram import draw_size_histogram

        if self.phase_labels is None or self._pending:
            return  # nothing yet, or the worker's result redraws
        try:
            stats = self.statistics()
            sizes = self.sizes_by_phase()
        except SamphaseError as exc:
            self.info.setText(f"error: {exc}")
            return
        draw_size_histogram(
            self.ax,
            sizes,
            self.pixel_size.length_unit,
            bins=self.bins_combo.currentText(),
            n_bins=self.n_bins(sizes),
            highlight=self.highlight,
        )
        self._style_axes()
        self.canvas.draw_idle()
        self._fill_table(stats)
        n = int(np.sum(stats["count"]))
        sized = int(np.sum(stats["count_measured"]))
        self.info.setText(
            f"pixel size: {self.pixel_size.describe()}; {n} particles, {sized} sized"
            + ("" if sized == n else " (border particles left out of sizes)")
        )

    def _style_axes(self) -> None:
        """napari's theme colours (dark or light) on the figure; on log bins plain
        numbers (0.5, 1, 2, 5) rather than 10^0 and 2x10^0."""
        from matplotlib.ticker import FuncFormatter

        pal = self.palette()
        bg, fg = pal.color(QPalette.Window).name(), pal.color(QPalette.WindowText).name()
        self.figure.set_facecolor(bg)
        self.ax.set_facecolor(bg)
        self.ax.tick_params(colors=fg, which="both")
        for spine in self.ax.spines.values():
            spine.set_color(fg)
        self.ax.xaxis.label.set_color(fg)
        self.ax.yaxis.label.set_color(fg)
        legend = self.ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_color(fg)
        if self.ax.get_xscale() == "log":
            self.ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            self.ax.xaxis.set_minor_formatter(FuncFormatter(_minor_log_label))

    def _fill_table(self, stats: dict) -> None:
        n = len(stats["phase"])
        self.table.setRowCount(n)
        for i in range(n):
            phase = int(stats["phase"][i])
            swatch = QTableWidgetItem("")
            swatch.setBackground(QColor(phase_hex(phase) if phase else "#444444"))
            cells = [swatch, *(QTableWidgetItem(cell(stats, i, self.pixel_size))
                               for _, cell in COLUMNS.values())]  # fmt: skip
            bold = QFont()
            bold.setBold(phase == self.highlight)
            for j, item in enumerate(cells):
                item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                item.setFont(bold)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        # tall enough for every phase (up to TABLE_ROWS) wherever the dock is placed
        rows = sum(self.table.rowHeight(i) for i in range(min(n, TABLE_ROWS)))
        height = (
            rows
            + self.table.horizontalHeader().sizeHint().height()
            + self.table.horizontalScrollBar().sizeHint().height()
            + 2 * self.table.frameWidth()
        )
        self.table.setMinimumHeight(height)
        self.table.setMaximumHeight(height)

    # -- export ----------------------------------------------------------------------------
    def export_csv(self, path) -> None:
        """The per-phase statistics as CSV (column names carry the units)."""
        from pathlib import Path

        from napari_samphase.core.errors import InputError
        from napari_samphase.core.image.io import write_table_csv

        stats = self.statistics()
        if stats is None:
            raise InputError("nothing measured yet: find phases first")
        write_table_csv(stats, Path(path))

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export statistics", "statistics.csv", "*.csv")
        if path:
            try:
                self.export_csv(path)
            except (SamphaseError, OSError) as exc:
                from napari.utils.notifications import show_error

                show_error(str(exc))


def measure_selected_labels(viewer: Viewer) -> MeasureDock:
    """Dock the measurements of the selected Labels layer (Layers > Measure).

    A phase map is measured as it is; an image's masks layer after Find phases as
    particles with their phases (see ``_napari.menus.measurement_inputs``). The
    sizes are in the layer's (or its image's) units.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose selected layer is measured.
    """
    from napari_samphase._napari.menus import measurement_inputs

    layer = viewer.layers.selection.active
    phase_labels, instances, pixel_size = measurement_inputs(viewer, layer)
    name = f"{DOCK_NAME}: {layer.name}"
    docked = viewer.window.dock_widgets.get(name)
    dock = docked if isinstance(docked, MeasureDock) else MeasureDock(viewer)
    if dock is not docked:
        viewer.window.add_dock_widget(dock, name=name, area="right")
    dock.update(phase_labels, instances, pixel_size)
    return dock
