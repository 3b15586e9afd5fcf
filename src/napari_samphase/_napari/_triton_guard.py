"""Keep torch from importing triton inside a running napari.

triton's bundled LLVM segfaults when it is loaded into a process that already
holds Mesa's LLVM (llvmpipe and most Mesa GPU drivers), which napari's OpenGL
canvas loads. torch only probes for triton (``import triton`` /
``importlib.util.find_spec``) and treats "not found" as "not installed"; the plugin
never needs ``torch.compile``. Set ``SAMPHASE_ALLOW_TRITON=1`` to opt out.
"""

from __future__ import annotations

import os
import sys


def block_triton() -> None:
    if os.environ.get("SAMPHASE_ALLOW_TRITON"):
        return
    # None in sys.modules makes `import triton` fail and find_spec return None.
    sys.modules.setdefault("triton", None)
