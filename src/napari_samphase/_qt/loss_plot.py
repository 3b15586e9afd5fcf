"""Train and validation loss per epoch, drawn with QPainter (no matplotlib)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPalette, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

# series -> line colour (readable on napari's dark and light themes)
COLORS = {"train": "#4fc3f7", "val": "#ffb74d"}


class LossPlot(QWidget):
    """One point per epoch for the train loss and, where there is one, the validation
    loss. ``add_epoch`` takes a ``core.training.sam_trainer.EpochReport``."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.epochs: list[int] = []
        self.series: dict[str, list[float | None]] = {name: [] for name in COLORS}
        self.val_iou: list[float | None] = []
        self.total = 0  # planned epochs: the x axis spans them from the start
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def clear(self, total: int = 0) -> None:
        self.epochs, self.val_iou, self.total = [], [], int(total)
        self.series = {name: [] for name in COLORS}
        self.update()

    def add_epoch(self, report) -> None:
        self.epochs.append(int(report.epoch))
        self.series["train"].append(_finite(report.train_loss))
        self.series["val"].append(_finite(report.val_loss))
        self.val_iou.append(_finite(report.val_iou))
        self.update()

    def _values(self) -> list[float]:
        return [v for values in self.series.values() for v in values if v is not None]

    def paintEvent(self, event):  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        w, h = self.width(), self.height()
        left, right, top, bottom = 46.0, 10.0, 26.0, 34.0
        plot = QRectF(left, top, max(w - left - right, 1.0), max(h - top - bottom, 1.0))
        text = self.palette().color(QPalette.WindowText)  # napari's theme, light or dark
        p.setPen(QPen(QColor("#888888"), 1))
        p.drawLine(plot.bottomLeft(), plot.bottomRight())
        p.drawLine(plot.bottomLeft(), plot.topLeft())
        p.setPen(text)
        p.drawText(QRectF(left, h - 17, plot.width(), 16), Qt.AlignCenter, "epoch")
        p.drawText(QRectF(4, 0, left + 40, 16), Qt.AlignLeft | Qt.AlignVCenter, "loss")
        values = self._values()
        if not values:
            p.drawText(plot, Qt.AlignCenter, "loss per epoch, while training")
            p.end()
            return
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
        last = max(self.total, self.epochs[-1], 2)

        def at(epoch, value):
            x = plot.left() + plot.width() * (epoch - 1) / (last - 1)
            y = plot.bottom() - plot.height() * (value - lo) / (hi - lo)
            return QPointF(x, y)

        for value, align in ((hi, Qt.AlignTop), (lo, Qt.AlignBottom)):  # y ticks
            y = at(1, value).y()
            box = QRectF(0, y - 8 if align == Qt.AlignTop else y - 14, left - 4, 16)
            p.drawText(box, Qt.AlignRight | Qt.AlignVCenter, f"{value:.3g}")
        for epoch in sorted({1, last}):  # x ticks
            x = at(epoch, lo).x()
            p.drawText(QRectF(x - 20, plot.bottom() + 2, 40, 14), Qt.AlignCenter, str(epoch))
        legend_x = plot.right()
        for name, color in reversed(COLORS.items()):
            points = [
                at(e, v)
                for e, v in zip(self.epochs, self.series[name], strict=True)
                if v is not None
            ]
            label = name
            if name == "val":
                ious = [v for v in self.val_iou if v is not None]
                if not points:
                    continue
                label = f"val (IoU {ious[-1]:.2f})" if ious else name
            p.setPen(QPen(QColor(color), 2))
            for a, b in zip(points, points[1:], strict=False):
                p.drawLine(a, b)
            p.setBrush(QColor(color))
            for pt in points:
                p.drawEllipse(pt, 3.0, 3.0)
            width = p.fontMetrics().horizontalAdvance(label) + 22
            legend_x -= width
            p.drawLine(QPointF(legend_x, 8), QPointF(legend_x + 14, 8))
            p.setPen(text)
            p.drawText(QRectF(legend_x + 18, 0, width, 16), Qt.AlignLeft | Qt.AlignVCenter, label)
        p.end()


def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)
