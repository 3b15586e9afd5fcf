"""The widget's "Train" section: fine-tune the chosen SAM on the open images' masks.

The images to learn from are every open image with a masks layer of its size
(``PhaseMapper.training_sources``); training runs in the widget's TaskRunner (napari
progress bar, Cancel keeps the best epoch), the loss plot follows each epoch, and the
best checkpoint is then selected, loaded and embedded in "Image and model".
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
)

from napari_samphase._napari.phase_mapper import ModelChoice
from napari_samphase._qt.loss_plot import LossPlot
from napari_samphase.core.errors import InputError
from napari_samphase.core.progress import Cancelled
from napari_samphase.core.sam.adapter import ADAPTERS
from napari_samphase.core.sam.registry import MODELS
from napari_samphase.core.training.sam_trainer import TRAIN_MODES, SamTrainConfig

DEFAULTS = {f.name: f.default for f in fields(SamTrainConfig)}


def default_output(base: str) -> Path:
    """A new file under the model cache: ``fine-tuned/BASE-YYYYmmdd-HHMMSS.pth``."""
    from napari_samphase.core.sam.weights import cache_dir

    stem = Path(base).stem if base not in MODELS else base
    stem = stem.split("-ft-")[0]  # a fine-tune of a fine-tune keeps the base's name
    folder = cache_dir() / "fine-tuned"
    path = folder / f"{stem}-ft-{time.strftime('%Y%m%d-%H%M%S')}.pth"
    n = 1
    while path.exists() or path.with_name(path.name + ".state").exists():
        n += 1
        path = path.with_name(f"{path.stem.split('.')[0]}.{n}.pth")
    return path


class TrainSection(QGroupBox):
    """Controls and loss plot of fine-tuning; ``owner`` is the ``SamphaseWidget`` (its
    runner, mapper, model choice and status line)."""

    epoch_reported = Signal(object)  # EpochReport, emitted in the worker, shown in the GUI

    def __init__(self, owner) -> None:
        super().__init__("Train")
        self.last_output: Path | None = None  # the last run's checkpoint file
        self.owner = owner
        form = QFormLayout(self)
        self.images = QListWidget()
        self.images.setMaximumHeight(80)
        self.images.setToolTip(
            "open images with masks: a Labels layer of the image's size named 'IMAGE "
            "masks' (what segmenting IMAGE fills), 'IMAGE_masks', 'IMAGE labels' or "
            "'IMAGE_labels'"
        )
        form.addRow("images", self.images)
        self.mode = QComboBox()
        self.mode.addItems(TRAIN_MODES)
        self.mode.setCurrentText(DEFAULTS["mode"])
        self.mode.setToolTip("decoder: encoders frozen (fast); full: every weight trains")
        self.adapter = QComboBox()
        self.adapter.addItems(ADAPTERS)
        self.adapter.setCurrentText(DEFAULTS["adapter"])
        self.adapter.setToolTip("gray: a learned gray -> RGB input adapter")
        row = QHBoxLayout()
        row.addWidget(self.mode)
        row.addWidget(self.adapter)
        form.addRow("mode, adapter", row)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(DEFAULTS["epochs"])
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.9)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(DEFAULTS["val_fraction"])
        self.val_fraction.setPrefix("validation ")
        row = QHBoxLayout()
        row.addWidget(self.epochs)
        row.addWidget(self.val_fraction)
        form.addRow("epochs", row)
        row = QHBoxLayout()
        self.output = QLineEdit()
        self.output.setPlaceholderText("new file in the model cache")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.output)
        row.addWidget(browse)
        form.addRow("output", row)
        row = QHBoxLayout()
        self.train_btn = QPushButton("Train")
        self.train_btn.setToolTip("fine-tune the model chosen above on the ticked images")
        self.train_btn.clicked.connect(self.run_train)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("stop after the current step, keeping the best epoch")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(owner.runner.cancel)
        row.addWidget(self.train_btn)
        row.addWidget(self.cancel_btn)
        form.addRow(row)
        self.plot = LossPlot()
        form.addRow(self.plot)
        self.epoch_reported.connect(self.plot.add_epoch)

    # -- the image list ----------------------------------------------------------------
    def refresh(self, *_) -> None:
        """List the images with masks, keeping what was unticked."""
        unticked = {it.data(Qt.UserRole) for it in self._items() if it.checkState() != Qt.Checked}
        for layer in self.owner.viewer.layers:  # a rename changes what pairs up
            layer.events.name.connect(self.refresh)
        self.images.clear()
        for image, masks in self.owner.mapper.training_sources().items():
            item = QListWidgetItem(f"{image}  ←  {masks}")
            item.setData(Qt.UserRole, image)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Unchecked if image in unticked else Qt.Checked)
            self.images.addItem(item)

    def _items(self) -> list[QListWidgetItem]:
        return [self.images.item(i) for i in range(self.images.count())]

    def chosen(self) -> list[str]:
        """The ticked image layers."""
        return [it.data(Qt.UserRole) for it in self._items() if it.checkState() == Qt.Checked]

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Fine-tuned checkpoint", "", "*.pth")
        if path:
            self.output.setText(path)

    def set_busy(self, busy: bool) -> None:
        self.train_btn.setEnabled(not busy)
        self.cancel_btn.setEnabled(busy)

    # -- training ----------------------------------------------------------------------
    def config(self, base: str, device: str, architecture: str = "vit_b") -> SamTrainConfig:
        return SamTrainConfig(
            base=base,
            architecture=architecture,
            mode=self.mode.currentText(),
            adapter=self.adapter.currentText(),
            epochs=self.epochs.value(),
            val_fraction=self.val_fraction.value(),
            device=device,
        )

    def run_train(self):
        """Fine-tune the model chosen in "Image and model" on the ticked images."""
        owner = self.owner
        try:
            choice = owner.choice()
            if choice.model not in MODELS:
                raise InputError("choose a SAM model (or its checkpoint) to fine-tune")
            names = self.chosen()
            if not names:
                raise InputError("no image to train on: tick an image with a masks layer")
            data = owner.mapper.training_data(names)  # copied here, in the main thread
        except InputError as exc:
            owner._error(exc)
            return None
        base = choice.checkpoint or choice.model
        config = self.config(base, choice.device, choice.model)
        # an empty field means a new file per run: a second run (from the first one's
        # checkpoint, now selected) must not write over it
        out = Path(self.output.text()) if self.output.text() else default_output(base)
        if choice.checkpoint and out.resolve() == Path(choice.checkpoint).resolve():
            owner._error(
                InputError(
                    f"{out} is the checkpoint training starts from: it would overwrite "
                    "it; choose another output file"
                )
            )
            return None
        self.last_output = out  # where this run writes (shown in the status line after)
        self.plot.clear(config.epochs)

        def work(progress):
            from napari_samphase.core.training.data import pairs_from_arrays
            from napari_samphase.core.training.sam_trainer import train_sam

            out.parent.mkdir(parents=True, exist_ok=True)  # an OSError is shown, not raised
            pairs = pairs_from_arrays(data)
            result = train_sam(
                pairs, config, out, progress=progress, on_epoch=self.epoch_reported.emit
            )
            return result, self._load(result, config.device, progress)

        return owner.runner.run(work, self._trained, "fine-tuning SAM")

    def _load(self, result, device: str, progress) -> bool:
        """Worker: load the new checkpoint and embed the current image; False when the
        run was cancelled (nothing more is started) or the load itself was."""
        if result.stopped == "cancelled":
            return False
        mapper = self.owner.mapper
        choice = ModelChoice(_architecture(result), str(result.checkpoint), device)
        try:
            mapper.load_model(choice, progress=progress)
            if mapper.image_layer is not None:
                mapper.embed(progress=progress)
        except (Cancelled, InputError):  # e.g. a 3D current image: the checkpoint stands
            return False
        return True

    def _trained(self, value) -> None:
        """Main thread: select the checkpoint in "Image and model" and say what came out."""
        result, loaded = value
        arch = _architecture(result)
        self.owner.select_checkpoint(arch, result.checkpoint)
        best = next((r for r in result.history if r.epoch == result.best_epoch), None)
        iou = "" if best is None or best.val_iou is None else f", val IoU {best.val_iou:.3f}"
        line = f"fine-tuned: best epoch {result.best_epoch} of {len(result.history)}{iou}"
        if result.stopped == "cancelled":
            line = f"cancelled; kept {line[len('fine-tuned: ') :]}"
        then = "model loaded, embedding ready" if loaded else "Load + embed to use it"
        self.owner.info.setText(f"{line} -> {result.checkpoint} ({then})")


def _architecture(result) -> str:
    """The architecture the checkpoint names (what the model combo shows)."""
    return str(result.metadata["architecture"])
