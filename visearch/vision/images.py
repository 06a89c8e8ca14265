"""The one safe way in for every image: uploads, files, data sets.

Checks run cheapest first (size, magic bytes, header dimensions) so a hostile upload
is refused before it is decoded; what passes comes out as an upright 8-bit RGB image.
Every refusal is an :class:`ImageError` whose ``http_status`` the API answers with.

>>> img = load_image(Path("photo.jpg").read_bytes())        # doctest: +SKIP
>>> img.mode
'RGB'
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from visearch.config import VisionSettings
from visearch.errors import InvalidArgumentError

__all__ = [
    "ImageLimits",
    "ImageError",
    "EmptyImageError",
    "ImageTooLargeError",
    "UnsupportedImageError",
    "CorruptImageError",
    "ImageTooSmallError",
    "sniff_format",
    "load_image",
    "to_rgb",
]


class ImageError(InvalidArgumentError):
    """An image that cannot be used; the message says why and what would work."""

    http_status = 422


class EmptyImageError(ImageError):
    http_status = 400


class ImageTooLargeError(ImageError):
    http_status = 413


class UnsupportedImageError(ImageError):
    http_status = 415


class CorruptImageError(ImageError):
    http_status = 422


class ImageTooSmallError(ImageError):
    http_status = 422


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 15 * 2**20
    max_pixels: int = 40_000_000
    min_side: int = 16

    @classmethod
    def from_settings(cls, vision: VisionSettings) -> ImageLimits:
        return cls(int(vision.max_image_mb * 2**20), vision.max_pixels, vision.min_side)


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
SUPPORTED = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def sniff_format(head: bytes) -> str | None:
    """The image format by its first bytes, whatever the file name or content type claims."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def _describe(head: bytes) -> str:
    try:
        head.decode("utf-8")
        return "it looks like text"
    except UnicodeDecodeError:
        return f"it starts with bytes {head[:8].hex(' ')}"


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: alpha over white, CMYK, 16/32-bit and float greyscale, palettes."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if img.mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr, top = (arr - lo), max(hi - lo, 1e-12)
        arr = np.clip(np.nan_to_num(arr) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(source: bytes | bytearray | Path | str, limits: ImageLimits | None = None) -> Image.Image:
    """Decode ``source`` (bytes or a file path) into an upright RGB image, or refuse it.

    Raises:
        EmptyImageError: no bytes at all.
        ImageTooLargeError: too many bytes or pixels (a decompression bomb included).
        UnsupportedImageError: not one of JPEG, PNG, WebP, GIF, BMP, TIFF.
        CorruptImageError: truncated or damaged data.
        ImageTooSmallError: narrower or shorter than ``limits.min_side``.
    """
    limits = limits or ImageLimits()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
        if path.stat().st_size > limits.max_bytes:
            raise ImageTooLargeError(f"{path}: {path.stat().st_size:,} bytes, the limit is {limits.max_bytes:,}")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise EmptyImageError("empty image: 0 bytes received")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"image of {len(data):,} bytes, the limit is {limits.max_bytes:,}")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise UnsupportedImageError(f"not a supported image ({_describe(data[:64])}); send one of {', '.join(SUPPORTED)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            w, h = img.size
            if w * h > limits.max_pixels:
                raise ImageTooLargeError(f"{fmt} of {w}x{h} pixels, the limit is {limits.max_pixels:,} pixels")
            if getattr(img, "is_animated", False):
                img.seek(0)  # an animation is searched by its first frame
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(f"{fmt} refused as a decompression bomb ({e}); the limit is {limits.max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise CorruptImageError(f"{fmt} data is truncated or corrupt ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the photo
        pass
    img = to_rgb(img)
    if min(img.size) < limits.min_side:
        raise ImageTooSmallError(f"image of {img.width}x{img.height} pixels; both sides must be at least {limits.min_side}")
    return img
