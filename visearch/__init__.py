"""visearch: search a marketplace by photo.

The core library: configuration, the synthetic marketplace, and (as they land) vision,
embedding, index, ranking and experiments. It imports no Ray and starts no server.
"""

from visearch.config import Settings, get_settings
from visearch.errors import VisearchError

__all__ = ["Settings", "VisearchError", "get_settings", "__version__"]

__version__ = "0.1.0"
