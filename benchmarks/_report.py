"""Shared helpers: timing, peak memory, and writing a section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import threading
import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


class PeakRSS:
    """Peak resident memory (MiB) of this process while the block runs (sampled)."""

    def __enter__(self):
        import psutil

        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.mib = self.peak / 2**20
        self.delta_mib = (self.peak - self.start) / 2**20


def timed(fn, *args, repeat: int = 1, **kwargs):
    """(result, best seconds, peak RSS MiB) of ``fn``."""
    best = float("inf")
    with PeakRSS() as mem:
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            best = min(best, time.perf_counter() - t0)
    return result, best, mem.mib


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )


def table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section between BEGIN/END markers named ``name``."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(markdown)
