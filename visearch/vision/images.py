"""The one safe way in for every image: uploads, files, data sets.

Checks run cheapest first (size, magic bytes, a walk over the file's structure, header
dimensions) so a hostile upload is refused before it is decoded; what passes comes out as
an upright 8-bit RGB image carrying no metadata. Every refusal is an :class:`ImageError`
whose ``http_status`` the API answers with; nothing else escapes :func:`load_image`.

CPU is bounded as well as memory: a progressive JPEG is decoded scan by scan, each scan a
full pass over the image, so the scans are counted before decoding; Pillow reads JPEG
markers, PNG chunks, GIF blocks and TIFF strips one at a time in Python, so their number is
bounded too; pure-Python decoders (RLE-compressed BMP, per pixel) are refused; and only the
first frame of a multi-frame file (TIFF pages, GIF/WebP/PNG animations) is ever read.

>>> img = load_image(Path("photo.jpg").read_bytes())        # doctest: +SKIP
>>> img.mode
'RGB'
"""

from __future__ import annotations

import functools
import io
import math
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

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
    "ImageTooComplexError",
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


class ImageTooComplexError(ImageError):
    """A file built to burn CPU: too many JPEG scans, or too many markers, chunks, blocks, strips.

    422, not 413: such a file is usually small (a few hundred KB can hold thousands of
    progressive scans), so "too large" would send the client off shrinking it, which does
    not help; the content is refused for how it is encoded, and re-saving it (baseline JPEG,
    PNG) is what works.
    """

    http_status = 422


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 15 * 2**20
    max_pixels: int = 40_000_000
    min_side: int = 16
    max_jpeg_scans: int = 100
    max_segments: int = 50_000
    max_frames: int = 100

    @classmethod
    def from_settings(cls, vision: VisionSettings) -> ImageLimits:
        return cls(
            max_bytes=int(vision.max_image_mb * 2**20),
            max_pixels=vision.max_pixels,
            min_side=vision.min_side,
            max_jpeg_scans=vision.max_jpeg_scans,
            max_segments=vision.max_image_segments,
            max_frames=vision.max_image_frames,
        )


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


# A JPEG marker: 0xFF then a code that is not a stuffed zero (0xFF00 inside entropy-coded
# data), not RST0-7 (restart markers inside entropy-coded data) and not a fill byte (0xFF
# runs pad before a marker, the last 0xFF of a run is the marker's). One byte of lookahead,
# so the search stays linear even over runs of 0xFF, and runs in C.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOI, _JPEG_EOI, _JPEG_SOS, _JPEG_TEM = 0xD8, 0xD9, 0xDA, 0x01


def _too_complex(what: str, count: int, limit: int, fix: str) -> ImageTooComplexError:
    return ImageTooComplexError(f"{what}: {count:,} or more, the limit is {limit:,}; {fix}")


def _check_jpeg(data: bytes, limits: ImageLimits) -> None:
    """Count the JPEG's scans (SOS) and segments without decoding anything.

    Walks marker to marker: a segment is skipped by its length, entropy-coded data after an
    SOS by searching for the next real marker. Bytes between header segments (junk, fill)
    count as segments, one each: Pillow reads them one by one in Python. Stops at EOI; an
    MPO's later images are never decoded. A damaged structure ends the walk quietly, the
    decoder then says what is wrong.
    """
    n, pos, scans, segments = len(data), 2, 0, 0
    fix = "re-save it as a baseline JPEG or a PNG"
    while True:
        m = _JPEG_MARKER.search(data, pos)
        if m is None:
            return
        i = m.start()
        if not scans:
            segments += i - pos  # junk before the first scan: Pillow walks it byte by byte
        code = data[i + 1]
        if code == _JPEG_EOI:
            return
        segments += 1
        if segments > limits.max_segments:
            raise _too_complex("JPEG markers and stray bytes", segments, limits.max_segments, fix)
        if code in (_JPEG_SOI, _JPEG_TEM):  # stand-alone markers, no length
            pos = i + 2
            continue
        if i + 4 > n:
            return
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            return
        if code == _JPEG_SOS:
            scans += 1
            if scans > limits.max_jpeg_scans:
                raise _too_complex(
                    "progressive JPEG with too many scans (each one is a full decoding pass)",
                    scans, limits.max_jpeg_scans, fix,
                )
        pos = i + 2 + length


def _check_png(data: bytes, limits: ImageLimits) -> None:
    """Count PNG chunks up to IEND (Pillow reads each one in Python); at most one iCCP.

    Each iCCP is inflated at open (up to 1 MB each, not counted against Pillow's text
    budget), so a file of repeated iCCP chunks costs a minute; the PNG specification
    allows one.
    """
    n, pos, chunks, iccp = len(data), 8, 0, 0
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > limits.max_segments:
            raise _too_complex("PNG chunks", chunks, limits.max_segments, "re-save it as a plain PNG or a JPEG")
        if kind == b"iCCP":
            iccp += 1
            if iccp > 1:
                raise CorruptImageError("PNG with more than one iCCP (colour profile) chunk; the PNG format allows one")
        elif kind == b"IEND":
            return
        pos += 12 + length


_GIF_BLOCK_START = re.compile(rb"[!,;]")


def _check_gif(data: bytes, limits: ImageLimits) -> None:
    """Count the GIF blocks before the first image: Pillow reads each sub-block in Python.

    Only the extensions (and stray bytes) before the first image descriptor are walked:
    that is all Pillow parses in Python for the first frame; its pixels are decoded in C and
    later frames are never touched.
    """
    n = len(data)
    if n < 13:
        return
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    blocks = 0
    fix = "re-save it as a plain GIF, a PNG or a JPEG"
    while pos < n:
        introducer = data[pos]
        if introducer in (0x2C, 0x3B):  # the first image, or the trailer
            return
        if introducer != 0x21:  # stray bytes: Pillow skips them one by one
            m = _GIF_BLOCK_START.search(data, pos)
            nxt = m.start() if m else n
            blocks += nxt - pos
            pos = nxt
        else:
            pos += 2  # introducer, label
            while pos < n:
                size = data[pos]
                pos += 1 + size
                blocks += 1
                if size == 0 or blocks > limits.max_segments:
                    break
        if blocks > limits.max_segments:
            raise _too_complex("GIF blocks before the first image", blocks, limits.max_segments, fix)


_TIFF_STRIP_OFFSETS, _TIFF_TILE_OFFSETS = 273, 324


def _check_tiff(data: bytes, limits: ImageLimits) -> None:
    """Count the first page's strips or tiles: uncompressed, Pillow reads each one in Python.

    Only the first IFD (page) is read; the page chain is never walked, so the number of
    pages costs nothing.
    """
    order = "<" if data[:2] == b"II" else ">"
    n = len(data)
    if n < 8:
        return
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    if ifd + 2 > n:
        return
    _count_tiff_pages(data, order, ifd, limits)
    (count,) = struct.unpack_from(order + "H", data, ifd)
    start = ifd + 2
    end = min(start + 12 * count, start + (n - start) // 12 * 12)
    for tag, _typ, values, _value in struct.iter_unpack(order + "HHI4s", data[start:end]):
        if tag in (_TIFF_STRIP_OFFSETS, _TIFF_TILE_OFFSETS) and values > limits.max_segments:
            raise _too_complex(
                "TIFF strips or tiles in the first page", values, limits.max_segments, "re-save it compressed, or as a PNG or JPEG"
            )


def _count_tiff_pages(data: bytes, order: str, ifd: int, limits: ImageLimits) -> None:
    """Follow the page chain at most ``max_frames`` steps (12 bytes read per step): a photo has one
    page, a file with thousands is a document or an attack, and only the first would be searched."""
    seen: set[int] = set()
    pages = 0
    while 0 < ifd and ifd + 2 <= len(data) and ifd not in seen:
        seen.add(ifd)
        pages += 1
        if pages > limits.max_frames:
            raise _too_complex("TIFF pages", pages, limits.max_frames, "send one photo, not a multi-page document")
        (count,) = struct.unpack_from(order + "H", data, ifd)
        nxt = ifd + 2 + 12 * count
        if nxt + 4 > len(data):
            return
        (ifd,) = struct.unpack_from(order + "I", data, nxt)


_STRUCTURE_CHECKS = {"JPEG": _check_jpeg, "PNG": _check_png, "GIF": _check_gif, "TIFF": _check_tiff}

# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the photo
        return 1


@functools.cache
def _to_uint8_lut(top: int) -> np.ndarray:
    """value -> round(value / top * 255), for integer values 0..top."""
    return np.floor(np.arange(top + 1, dtype=np.float64) / top * 255.0 + 0.5).astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: alpha over white, CMYK, 16/32-bit and float greyscale, palettes."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        if img.mode == "RGB":
            return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img)
        if img.mode.startswith("I;16"):
            top = 65535
        else:
            top = 65535 if arr.max(initial=0) > 255 else 255
            arr = np.clip(arr, 0, top)
        return Image.fromarray(_to_uint8_lut(top)[arr]).convert("RGB")
    if img.mode == "F":
        lo, hi = img.getextrema()
        if math.isfinite(lo) and math.isfinite(hi):  # stretch lo..hi to 0..255 in C (F -> L truncates: +0.5 rounds)
            scale = 255.0 / max(hi - lo, 1e-12)
            return img.point(lambda v: v * scale + (0.5 - lo * scale)).convert("L").convert("RGB")
        arr = np.asarray(img, dtype=np.float64)  # NaN or infinity somewhere: the slow, careful way
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = np.nan_to_num(arr - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba)  # blends by the alpha channel: the same as compositing over white, in C
        return white
    return img.convert("RGB")


def load_image(source: bytes | bytearray | Path | str, limits: ImageLimits | None = None) -> Image.Image:
    """Decode ``source`` (bytes or a file path) into an upright RGB image, or refuse it.

    The image returned is a plain in-memory RGB image with an empty ``info``: no EXIF (GPS
    position, camera serial, time), XMP, IPTC, comments, nor the ICC profile (nothing
    downstream applies it: pixels are taken as sRGB, and a profile can name the device).
    Only the first frame of a multi-frame file is read.

    Raises (nothing else; a ``MemoryError`` aside):
        EmptyImageError: no bytes at all.
        ImageTooLargeError: too many bytes or pixels (a decompression bomb included).
        UnsupportedImageError: not one of JPEG, PNG, WebP, GIF, BMP, TIFF, or one Pillow
            would decode in pure Python (RLE-compressed BMP).
        ImageTooComplexError: more than ``limits.max_jpeg_scans`` JPEG scans, or more than
            ``limits.max_segments`` JPEG markers, PNG chunks, GIF blocks, TIFF strips/tiles.
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
        return _decode(data, fmt, limits)
    except (ImageError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - whatever Pillow or numpy raise on a hostile file is the file's fault
        raise CorruptImageError(f"{fmt} data could not be decoded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def _decode(data: bytes, fmt: str, limits: ImageLimits) -> Image.Image:
    check = _STRUCTURE_CHECKS.get(fmt)
    if check is not None:
        check(data, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Opening reads the first frame's header only: n_frames / is_animated are never
            # asked (on GIF and TIFF they walk the file), the first frame is the current one.
            img = Image.open(io.BytesIO(data), formats=[fmt])
            w, h = img.size
            if w * h > limits.max_pixels:
                raise ImageTooLargeError(f"{fmt} of {w}x{h} pixels, the limit is {limits.max_pixels:,} pixels")
            slow = sorted({t[0] for t in img.tile if t[0] in Image.DECODERS})
            if slow:
                raise UnsupportedImageError(
                    f"{fmt} with {', '.join(slow)} compression is not accepted (decoded in pure Python, pixel by pixel); "
                    "send it as PNG or JPEG"
                )
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(f"{fmt} refused as a decompression bomb ({e}); the limit is {limits.max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise CorruptImageError(f"{fmt} data is truncated or corrupt ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    upright = _UPRIGHT.get(_orientation(img))
    rgb = to_rgb(img)
    if upright is not None:
        rgb = rgb.transpose(upright)
    elif rgb is img:
        rgb = img.copy()  # a plain in-memory image, detached from the file and its metadata
    rgb.info = {}  # privacy: see the docstring of load_image
    if min(rgb.size) < limits.min_side:
        raise ImageTooSmallError(f"image of {rgb.width}x{rgb.height} pixels; both sides must be at least {limits.min_side}")
    return rgb
