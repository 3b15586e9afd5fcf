"""A small bar chart of phase area fractions, drawn with QPainter (no matplotlib)."""

from __future__ import annotations

from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget


class PhaseChart(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.bars: list[tuple[str, float, str]] = []  # label, percent, hex colour
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def set_table(self, table) -> None:
        self.bars = [
            ("bg" if p == 0 else f"P{p}", float(f), c)
            for p, f, c in zip(table["phase"], table["area_fraction"], table["color"], strict=True)
        ]
        self.update()

    def paintEvent(self, event):  # noqa: N802 - Qt API
        if not self.bars:
            return
        p = QPainter(self)
        w, h = self.width(), self.height()
        top, bottom = 16.0, 18.0
        slot = w / len(self.bars)
        peak = max(f for _, f, _ in self.bars) or 1.0
        for i, (label, frac, color) in enumerate(self.bars):
            bh = (h - top - bottom) * frac / peak
            x = i * slot + slot * 0.15
            rect = QRectF(x, h - bottom - bh, slot * 0.7, bh)
            p.fillRect(rect, QColor(color if label != "bg" else "#444444"))
            p.setPen(QColor("white"))
            p.drawText(QRectF(i * slot, h - bottom, slot, bottom), Qt.AlignCenter, label)
            p.drawText(
                QRectF(i * slot, h - bottom - bh - top, slot, top), Qt.AlignCenter, f"{frac:.1f}%"
            )
        p.end()
