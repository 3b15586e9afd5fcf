"""Progress bars for the command line: one tqdm bar per stage, counting its own units."""

from __future__ import annotations

import sys


class TqdmProgress:
    """A ``(done, total, message)`` callback drawing one tqdm bar per message; a part of
    the message in parentheses ("epoch 2/5 (loss 0.31)") is shown beside the bar and
    does not start a new one."""

    def __init__(self, desc: str = "", disable: bool = False) -> None:
        self.desc, self.disable, self.bar, self.msg = desc, disable, None, None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        from tqdm import tqdm

        msg, _, extra = message.partition(" (") if message else (self.desc, "", "")
        if self.bar is None or msg != self.msg or total != self.bar.total:
            self.close()
            self.bar = tqdm(
                total=total,
                desc=f"{self.desc}{msg}",
                leave=False,
                disable=self.disable,
                file=sys.stderr,
            )
            self.msg = msg
        self.bar.n = done
        if extra:
            self.bar.set_postfix_str(extra.removesuffix(")"), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
