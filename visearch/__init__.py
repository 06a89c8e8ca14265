"""visearch: search a marketplace by photo.

The core library: configuration, the synthetic marketplace, and (as they land) vision,
embedding, index, ranking and experiments. It imports no Ray and starts no server.
"""

import os

# OpenMP threads that finished a torch op spin-wait for the next one by default; in a process
# that also runs onnxruntime (PP-OCR) they starve it and each other: YOLO at 160 px took
# 1,150 ms instead of 10 ms after an OCR call on 2 cores. Passive waiting costs nothing
# measurable here. Set before torch loads its OpenMP runtime; a user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from visearch.config import Settings, get_settings  # noqa: E402
from visearch.errors import VisearchError  # noqa: E402

__all__ = ["Settings", "VisearchError", "get_settings", "__version__"]

__version__ = "0.1.0"
