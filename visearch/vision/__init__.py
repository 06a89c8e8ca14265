"""Vision: safe image input, object detection (YOLO) and article reading (PP-OCR)."""

from visearch.vision.images import ImageError, ImageLimits, load_image

__all__ = ["ImageError", "ImageLimits", "load_image"]
