"""The dock widget: a thin Qt view over :class:`PhaseMapper` (one per widget, in
``napari_samphase._napari.phase_mapper``). The ``run_*`` actions start background
work (napari progress bar, Cancel); clicks, boxes and commits act at once. The first
phases found dock the measurement dock (``_qt.measure_dock.MeasureDock``) beside it."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_samphase._napari.phase_mapper import ModelChoice, PhaseMapper
from napari_samphase._qt.phase_chart import PhaseChart
from napari_samphase._qt.train_section import TrainSection
from napari_samphase._qt.workers import Cancelled, TaskRunner
from napari_samphase.core.device import DEVICE_CHOICES
from napari_samphase.core.errors import SamphaseError
from napari_samphase.core.phases.clustering import BACKGROUND_MODES
from napari_samphase.core.phases.features import FEATURE_SETS
from napari_samphase.core.sam.registry import MODELS

# Weight-free proposers, listed after the SAM models: label -> (proposer, its options).
WEIGHT_FREE = {
    "watershed (no weights)": ("watershed", {}),
    "watershed, dark + bright particles (no weights)": ("watershed", {"objects": "both"}),
    "threshold (no weights)": ("threshold", {}),
    "superpixels (no weights)": ("superpixels", {}),
}
MODES = ("navigate", "segment", "same phase", "assign")


def _fmt(value, spec: str = ".3g") -> str:
    value = float(value)
    return "–" if not np.isfinite(value) else format(value, spec)


# The phase table: header ("{unit}": the length unit of the image) -> the text of row i
# of the table t (core.outputs.report.phase_table); u is the image's PixelSize.
TABLE_COLUMNS = {
    "phase": lambda t, i, u: "background" if t["phase"][i] == 0 else str(t["phase"][i]),
    "area % [95% CI]": lambda t, i, u: (
        f"{t['area_fraction'][i]:.2f} [{_fmt(t['area_fraction_ci_low'][i], '.1f')}, "
        f"{_fmt(t['area_fraction_ci_high'][i], '.1f')}]"
    ),
    "area ({unit}²)": lambda t, i, u: _fmt(t[f"area{u.suffix(2)}"][i], ".4g"),
    "count": lambda t, i, u: str(t["count"][i]),
    "mean int.": lambda t, i, u: _fmt(t["mean_intensity"][i]),
}
UNIT_TEXT = {"um": "µm", "px": "px"}


def _dock_of(widget) -> QDockWidget | None:
    """The QDockWidget holding ``widget`` (the Qt object itself: napari hands plugins
    proxies of what ``add_dock_widget`` returns, which Qt calls refuse)."""
    while widget is not None and not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    return widget


class SamphaseWidget(QWidget):
    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.mapper = PhaseMapper(napari_viewer)
        # boxes drawn are previewed here: in a worker when the image must be embedded
        self.mapper.auto_preview = False
        self.runner = TaskRunner(self._error, self._set_busy)
        self.mode = "navigate"
        self.measure_dock = None  # docked when phases are first found
        self._build()
        self.mapper.status.connect(self.info.setText, check_nargs=False)
        self.mapper.table_changed.connect(self._show_table)
        self.mapper.boxes_changed.connect(self._boxes_drawn)
        self.mapper.subscribe(self._mapper_changed)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse)
        self._refresh_layers()

    # -- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        # The controls scroll: the dock may be shorter than all of them (a laptop
        # screen, or the measurement dock stacked below it).
        frame = QVBoxLayout(self)
        frame.setContentsMargins(0, 0, 0, 0)
        scroll = self.scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        inner = QWidget()
        root = QVBoxLayout(inner)
        box = QGroupBox("Image and model")
        form = QFormLayout(box)
        self.image_combo = QComboBox()
        self.image_combo.currentTextChanged.connect(self._image_chosen)
        form.addRow("image", self.image_combo)
        self.pixel_label = QLabel("")
        self.pixel_label.setToolTip(
            "from the image layer's scale and units (a TIFF's calibration when opened "
            "with this plugin's reader); unknown: lengths and areas in pixels"
        )
        form.addRow("pixel size", self.pixel_label)
        self.model_combo = QComboBox()
        self.model_combo.addItems([*MODELS, *WEIGHT_FREE])
        self.model_combo.currentTextChanged.connect(self._model_changed)
        form.addRow("model", self.model_combo)
        row = QHBoxLayout()
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("official checkpoint (downloaded once)")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.checkpoint)
        row.addWidget(browse)
        form.addRow("checkpoint", row)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        form.addRow("device", self.device_combo)
        row = QHBoxLayout()
        self.download_btn = QPushButton("Download")
        self.download_btn.clicked.connect(self.run_download)
        self.load_btn = QPushButton("Load + embed")
        self.load_btn.clicked.connect(self.run_load_and_embed)
        row.addWidget(self.download_btn)
        row.addWidget(self.load_btn)
        form.addRow(row)
        root.addWidget(box)

        box = QGroupBox("Click mode")
        lay = QVBoxLayout(box)
        row = QHBoxLayout()
        self.mode_group = QButtonGroup(self)
        for i, name in enumerate(MODES):
            rb = QRadioButton(name)
            rb.setChecked(name == "navigate")
            self.mode_group.addButton(rb, i)
            row.addWidget(rb)
        self.mode_group.idClicked.connect(lambda i: self.set_mode(MODES[i]))
        lay.addLayout(row)
        hint = QLabel(
            "segment: left click +, right or Shift+click −; Draw box, then drag a "
            "rectangle; Enter commits, Escape clears"
        )
        hint.setWordWrap(True)  # a long unwrapped label would widen the dock
        lay.addWidget(hint)
        row = QHBoxLayout()
        self.box_btn = QPushButton("Draw box")
        self.box_btn.setToolTip(
            "drag a rectangle around an object (elongated or thin ones): SAM's box "
            "prompt, with or without clicks; the last rectangle counts"
        )
        self.box_btn.clicked.connect(self.draw_box)
        row.addWidget(self.box_btn)
        self.commit_btn = QPushButton("Commit object")
        self.commit_btn.clicked.connect(self.commit)
        clear = QPushButton("Clear prompts")
        clear.clicked.connect(self.clear_prompts)
        self.assign_spin = QSpinBox()
        self.assign_spin.setRange(1, 20)
        self.assign_spin.setPrefix("assign to phase ")
        row.addWidget(self.commit_btn)
        row.addWidget(clear)
        row.addWidget(self.assign_spin)
        lay.addLayout(row)
        root.addWidget(box)

        box = QGroupBox("Segment everything")
        row = QHBoxLayout()
        self.pps = QSpinBox()
        self.pps.setRange(4, 128)
        self.pps.setValue(32)
        self.pps.setPrefix("grid ")
        self.pps.setToolTip("points per side of the prompt grid")
        self.min_area = QSpinBox()
        self.min_area.setRange(0, 100000)
        self.min_area.setValue(20)  # specks of a few pixels only add noise to phases
        self.min_area.setPrefix("min ")
        self.min_area.setSuffix(" px")
        self.everything_btn = QPushButton("Segment everything")
        self.everything_btn.clicked.connect(self.run_segment_everything)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.runner.cancel)
        row.addWidget(self.pps)
        row.addWidget(self.min_area)
        row.addWidget(self.everything_btn)
        row.addWidget(self.cancel_btn)
        # Thresholds re-filter the last run's decoder outputs: no decoder pass again.
        row2 = QHBoxLayout()
        self.iou_thresh = QDoubleSpinBox()
        self.stab_thresh = QDoubleSpinBox()
        for spin, label in ((self.iou_thresh, "pred. IoU "), (self.stab_thresh, "stability ")):
            spin.setRange(0.0, 1.0)
            spin.setSingleStep(0.05)
            spin.setPrefix(label)
            spin.setSpecialValueText(f"{label}model default")  # at 0.0: the model's own
        self.regen_btn = QPushButton("Apply thresholds")
        self.regen_btn.setToolTip("re-filter the last segment-everything without the decoder")
        self.regen_btn.clicked.connect(self.run_apply_thresholds)
        row2.addWidget(self.iou_thresh)
        row2.addWidget(self.stab_thresh)
        row2.addWidget(self.regen_btn)
        outer = QVBoxLayout()
        outer.addLayout(row)
        outer.addLayout(row2)
        box.setLayout(outer)
        root.addWidget(box)

        box = QGroupBox("Phases")
        form = QFormLayout(box)
        row = QHBoxLayout()
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 20)
        self.k_spin.setValue(3)
        self.k_auto = QCheckBox("auto")
        row.addWidget(self.k_spin)
        row.addWidget(self.k_auto)
        form.addRow("K", row)
        self.features_combo = QComboBox()
        self.features_combo.addItems(list(FEATURE_SETS))
        self.features_combo.setCurrentText("default")
        form.addRow("features", self.features_combo)
        self.background_combo = QComboBox()
        self.background_combo.addItems(BACKGROUND_MODES)
        form.addRow("background", self.background_combo)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["masks", "auto", "pixels", "intensity"])
        self.mode_combo.setToolTip(
            "masks: cluster the masks layer; pixels: per-pixel texture; intensity: gray "
            "level; auto: the best-scoring of the three (their components become the masks)"
        )
        form.addRow("phase mode", self.mode_combo)
        self.phases_btn = QPushButton("Find phases / re-cluster")
        self.phases_btn.clicked.connect(self.run_find_phases)
        form.addRow(self.phases_btn)
        root.addWidget(box)

        self.info = QLabel("")
        self.info.setWordWrap(True)
        root.addWidget(self.info)
        self.table = QTableWidget(0, 1 + len(TABLE_COLUMNS))
        self._set_table_headers()
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(120)  # background + a few phases without scrolling
        root.addWidget(self.table)
        self.chart = PhaseChart()
        root.addWidget(self.chart)
        export = QPushButton("Export results (tables, COCO, label TIFFs, panoptic)…")
        export.setToolTip(
            "BASE.csv (phase table) and beside it: _particles.csv, _statistics.csv, "
            "_sizes.png, _coco.json, _masks.tif, _phases.tif (calibrated), _panoptic.*, "
            "_provenance.json"
        )
        export.clicked.connect(self._export_dialog)
        root.addWidget(export)
        self.train = TrainSection(self)
        root.addWidget(self.train)
        root.addStretch()
        scroll.setWidget(inner)
        # as wide as the controls: no horizontal scrolling, nothing cut off
        scroll.setMinimumWidth(
            inner.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
        )
        frame.addWidget(scroll)
        self._model_changed(self.model_combo.currentText())

    # -- helpers -----------------------------------------------------------------------------
    def _refresh_layers(self, *_):
        from napari.layers import Image

        names = [ly.name for ly in self.viewer.layers if isinstance(ly, Image)]
        current = self.image_combo.currentText()
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)
        self.image_combo.blockSignals(False)
        self._image_chosen(self.image_combo.currentText())

    def _image_chosen(self, name: str):
        layers = self.viewer.layers
        self.mapper.image_layer = layers[name] if name in layers else None  # noqa: SIM401
        self.pixel_label.setText(self.mapper.pixel_size.describe())
        self._show_table(self.mapper.table)  # that image's phases (none: empty)
        self.train.refresh()  # the masks layer goes with the current image

    def _model_changed(self, name: str):
        from napari_samphase.core.sam.weights import is_cached

        sam = name not in WEIGHT_FREE
        for w in (self.checkpoint, self.device_combo, self.load_btn):
            w.setEnabled(sam)
        self.download_btn.setEnabled(sam and not is_cached(name))

    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self, "SAM checkpoint", "", "*.pth *.pt")
        if path:
            self.checkpoint.setText(path)

    def select_checkpoint(self, architecture: str, path) -> None:
        """Show ``path`` (of ``architecture``) as the model in use, e.g. after training."""
        self.model_combo.setCurrentText(architecture)
        self.checkpoint.setText(str(path))

    def choice(self) -> ModelChoice:
        return ModelChoice(
            self.model_combo.currentText(),
            self.checkpoint.text() or None,
            self.device_combo.currentText(),
        )

    def _error(self, exc: Exception):
        from napari.utils.notifications import show_error, show_info

        if isinstance(exc, Cancelled):
            show_info("cancelled")
            self.info.setText("cancelled")
        elif isinstance(exc, (SamphaseError, ValueError, RuntimeError)):
            show_error(str(exc))
            self.info.setText(f"error: {exc}")
        else:
            show_error(f"{type(exc).__name__}: {exc}")
            self.info.setText(f"error: {exc}")

    def _set_table_headers(self) -> None:
        unit = UNIT_TEXT.get(self.mapper.pixel_size.length_unit, "px")
        self.table.setHorizontalHeaderLabels(["", *(h.format(unit=unit) for h in TABLE_COLUMNS)])

    def _set_busy(self, busy: bool):
        self.cancel_btn.setEnabled(busy)
        for w in (self.load_btn, self.everything_btn, self.regen_btn, self.phases_btn):
            w.setEnabled(not busy)
        self.train.set_busy(busy)

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except SamphaseError as exc:
            self._error(exc)
            return None

    # -- actions -----------------------------------------------------------------------------
    def run_download(self):
        """Download the chosen official checkpoint (checked against its SHA-256)."""
        from napari_samphase.core.sam.weights import download

        name = self.model_combo.currentText()
        self.runner.run(
            lambda p: download(name, progress=p),
            lambda path: (self.info.setText(f"{name}: {path}"), self._model_changed(name)),
            f"downloading {name}",
        )

    def run_load_and_embed(self):
        """Load the chosen model and embed the current image."""
        choice = self.choice()

        def work(progress):
            self.mapper.load_model(choice, progress=progress)
            return self.mapper.embed(progress=progress)

        return self.runner.run(
            work,
            lambda s: self.info.setText(f"{choice.model}: embedding ready ({s.device})"),
            "image embedding",
        )

    def run_segment_everything(self):
        """Segment the whole image with the chosen SAM model or weight-free proposer."""
        name = self.model_combo.currentText()
        if name in WEIGHT_FREE:
            (proposer, options), min_area = WEIGHT_FREE[name], self.min_area.value()
            return self.runner.run(
                lambda p: self.mapper.compute_proposal(proposer, p, min_area=min_area, **options),
                self._apply_segmentation,
                proposer,
            )
        choice = self.choice()
        pps, min_area = self.pps.value(), self.min_area.value()
        iou, stab = self._thresholds()

        def work(progress):
            self.mapper.load_model(choice, progress=progress)
            return self.mapper.compute_everything(progress, pps, iou, stab, min_area)

        return self.runner.run(work, self._apply_segmentation, "segment everything")

    def _thresholds(self):
        """(pred IoU, stability); None where the box shows "model default" (0.0)."""
        return tuple(s.value() or None for s in (self.iou_thresh, self.stab_thresh))

    def run_apply_thresholds(self):
        """The last segment-everything's masks under the thresholds now set (no decoder)."""
        iou, stab = self._thresholds()
        min_area = self.min_area.value()
        return self.runner.run(
            lambda p: self.mapper.compute_regenerate(iou, stab, min_area, p),
            self._apply_segmentation,
            "thresholds",
        )

    def run_find_phases(self):
        """Cluster the current masks into phases (re-clustering keeps hand assignments)."""
        k = "auto" if self.k_auto.isChecked() else self.k_spin.value()
        feats, bg = self.features_combo.currentText(), self.background_combo.currentText()
        mode = self.mode_combo.currentText()
        return self.runner.run(
            lambda p: self.mapper.compute_phases(k, feats, bg, progress=p, mode=mode),
            self._apply_phases,
            "find phases",
        )

    def _apply_segmentation(self, seg):
        return self._guard(self.mapper.apply_segmentation, seg)

    def _apply_phases(self, run):
        return self._guard(self.mapper.apply_phases, run)

    def commit(self):
        self._guard(self.mapper.commit)

    def draw_box(self):
        """Segment mode with the image's boxes layer in rectangle mode: a dragged
        rectangle is SAM's box prompt (previewed with the clicks)."""
        self.set_mode("segment")
        layer = self._guard(self.mapper.boxes_layer)
        if layer is None:
            return None
        for key, action in (("Enter", self.commit), ("Escape", self.clear_prompts)):
            layer.bind_key(key, lambda _, action=action: action(), overwrite=True)
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        return layer

    def clear_prompts(self):
        self._guard(self.mapper.clear_prompts)

    def set_mode(self, mode: str):
        self.mode = mode
        self.mode_group.button(MODES.index(mode)).setChecked(True)
        if mode == "segment":
            layer = self._guard(self.mapper.prompts_layer)
            if layer is not None:
                layer.bind_key("Enter", lambda _: self.commit(), overwrite=True)
                layer.bind_key("Escape", lambda _: self.clear_prompts(), overwrite=True)
                self.viewer.layers.selection.active = layer
        elif mode == "navigate":
            self.mapper.clear_highlight()

    def click(self, row: float, col: float, negative: bool = False):
        """What a click at image pixel (row, col) does in the current mode."""
        if self.mode == "segment":
            return self._guard(self._prompt, row, col, not negative)
        if self.mode == "same phase":
            return self._guard(self.mapper.highlight, row, col)
        if self.mode == "assign":
            return self._guard(self.mapper.assign, row, col, self.assign_spin.value())
        return None

    def _prompt(self, row: float, col: float, positive: bool):
        """A segment click: the preview at once when the embedding is of the image on
        screen; after a change, the point now and the preview once a worker re-embedded."""
        mapper = self.mapper
        if mapper.embedding_is_current():
            return mapper.add_prompt(row, col, positive)
        mapper.add_prompt(row, col, positive, preview=False)
        self._preview_after_embedding()
        return None

    def _boxes_drawn(self):
        """A box prompt drawn, moved or deleted: preview at once, or after a worker
        embedded the image."""
        mapper = self.mapper
        if mapper.session is None:
            self.info.setText("load a SAM model first (Load + embed): boxes prompt SAM")
            return None
        if mapper.embedding_is_current():
            return self._guard(mapper.update_preview)
        self._preview_after_embedding()
        return None

    def _preview_after_embedding(self):
        mapper = self.mapper
        if not self.runner.busy:  # prompts during the embedding are previewed with it
            self.info.setText("computing the image embedding: the preview follows")
            self.runner.run(
                mapper.ensure_embedding,
                lambda _: self._guard(mapper.update_preview),
                "image embedding",
            )

    def _on_mouse(self, viewer, event):
        if self.mode == "navigate" or self.mapper.image_layer is None:
            return
        start = np.asarray(event.position)
        yield
        moved = False
        while event.type == "mouse_move":
            moved = moved or np.abs(np.asarray(event.position) - start).max() > 2
            yield
        if moved:  # a drag pans the view; only a click acts
            return
        row, col = self.mapper.image_layer.world_to_data(start)[-2:]
        negative = event.button == 2 or "Shift" in event.modifiers
        self.click(row, col, negative)

    def _show_table(self, table):
        """The phase table in the image's units (None: no phases, an empty table)."""
        self._set_table_headers()
        self.pixel_label.setText(self.mapper.pixel_size.describe())
        if table is None:
            self.table.setRowCount(0)
            self.chart.set_table({"phase": [], "area_fraction": [], "color": []})
            return
        size = self.mapper.pixel_size
        n = len(table["phase"])
        self.table.setRowCount(n)
        for i in range(n):
            swatch = QTableWidgetItem("")
            swatch.setBackground(QColor(table["color"][i]))
            cells = [swatch, *(QTableWidgetItem(cell(table, i, size))
                               for cell in TABLE_COLUMNS.values())]  # fmt: skip
            for j, item in enumerate(cells):
                item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.chart.set_table(table)

    def table_rows(self) -> list[list[str]]:
        """The phase table as shown (header row first): for tests and copy-paste."""
        cols = range(1, self.table.columnCount())
        rows = [[self.table.horizontalHeaderItem(j).text() for j in cols]]
        for i in range(self.table.rowCount()):
            rows.append([self.table.item(i, j).text() for j in cols])
        return rows

    # -- measurement dock ----------------------------------------------------------------------
    def _mapper_changed(self, kind, value):
        if kind == "phases" and self.measure_dock is None:
            self.show_measurements()

    def show_measurements(self):
        """Dock the measurement dock (per-phase statistics and size histograms that
        follow re-clustering, mask edits and the highlighted phase), or show it again."""
        from napari_samphase._qt.measure_dock import DOCK_NAME, MeasureDock

        dock = self.measure_dock
        if dock is None:
            dock = self.measure_dock = MeasureDock(self.viewer, self.mapper)
            self.viewer.window.add_dock_widget(dock, name=DOCK_NAME, area="right")
            self._share_height(_dock_of(dock))
        else:  # shown again, and given its share of the height again
            docked = _dock_of(dock)
            if docked is not None:
                docked.show()
                docked.raise_()
                self._share_height(docked)
        if self.mapper.result is not None:  # phases found before it subscribed
            dock.notify("phases", self.mapper.result)
            dock.set_highlight(self.mapper.highlighted)
        return dock

    def _share_height(self, docked) -> None:
        """Stacked below this widget's dock, the measurement dock takes two fifths of
        the height (Qt would give it all the room its chart asks for)."""
        own = _dock_of(self)
        main = None if docked is None else docked.parentWidget()
        if own is None or not isinstance(main, QMainWindow):
            return
        height = max(own.height() + docked.height(), 500)
        main.resizeDocks([own, docked], [height * 3 // 5, height * 2 // 5], Qt.Vertical)

    def _export_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Export results", "phases.csv", "*.csv")
        if path:
            self._guard(self.mapper.export_table, path)
