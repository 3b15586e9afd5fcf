"""python -m napari_samphase.cli"""

import sys

from napari_samphase.cli import main

sys.exit(main())
