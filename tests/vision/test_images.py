"""Every hostile or odd image gets its own clear error or a correct RGB result."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

from visearch.config import VisionSettings
from visearch.vision.images import (
    CorruptImageError,
    EmptyImageError,
    ImageLimits,
    ImageTooComplexError,
    ImageTooLargeError,
    ImageTooSmallError,
    UnsupportedImageError,
    load_image,
    sniff_format,
)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height: a bomb that would need gigabytes to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def photo(w: int = 64, h: int = 48) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = 200  # red
    arr[: h // 2, :, 2] = 255  # top half magenta: shows orientation
    return Image.fromarray(arr)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_supported_formats_round_trip(fmt):
    img = load_image(encode(photo(), fmt))
    assert img.mode == "RGB" and img.size == (64, 48)
    assert sniff_format(encode(photo(), fmt)[:16]) == fmt


def test_empty():
    with pytest.raises(EmptyImageError, match="0 bytes"):
        load_image(b"")


def test_text_file():
    with pytest.raises(UnsupportedImageError, match="looks like text") as e:
        load_image("привет, это не картинка\n".encode())
    assert e.value.http_status == 415


def test_truncated_jpeg():
    data = encode(photo(256, 256), "JPEG", quality=90)
    with pytest.raises(CorruptImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_huge_png_is_refused_before_decoding():
    with pytest.raises(ImageTooLargeError, match="900000000 pixels") as e:
        load_image(png_header_only(30000, 30000))
    assert e.value.http_status == 413


def test_too_many_bytes():
    with pytest.raises(ImageTooLargeError, match="limit"):
        load_image(encode(photo(), "PNG"), ImageLimits(max_bytes=100))


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # pure red in CMYK
    img = load_image(encode(cmyk, "JPEG", quality=95))
    r, g, b = np.asarray(img).reshape(-1, 3).mean(axis=0)
    assert img.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_16_bit_png():
    arr = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    img = load_image(encode(Image.fromarray(arr), "PNG"))
    out = np.asarray(img)
    assert img.mode == "RGB" and out[0, 0, 0] == 0 and out[-1, -1, 0] == 255


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    img = load_image(data)
    r, g, b = np.asarray(img)[16, 16]
    assert r > 200 and b < 50


def test_one_pixel_image():
    with pytest.raises(ImageTooSmallError, match="1x1"):
        load_image(encode(Image.new("RGB", (1, 1)), "PNG"))


def test_exif_orientation_is_applied():
    img = photo(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    out = load_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (48, 64)


def test_alpha_and_palette_composite_over_white():
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert np.asarray(load_image(encode(rgba, "PNG"))).min() == 255
    pal = Image.new("P", (32, 32), 0)
    pal.info["transparency"] = 0
    assert np.asarray(load_image(encode(pal, "PNG", transparency=0))).min() == 255


def test_path_input(tmp_path):
    p = tmp_path / "снимок.png"
    p.write_bytes(encode(photo(), "PNG"))
    assert load_image(p).size == (64, 48)
    with pytest.raises(Exception, match="no such file"):
        load_image(tmp_path / "missing.png")


# --- CPU-exhaustion inputs: each is refused (or read) within 2 s, never decoded in full ------------

BOUND_S = 2.0  # the API's promise: every hostile upload gets its 4xx within 2 s


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def progressive_jpeg_with_many_scans(scans: int = 5000, side: int = 6000) -> bytes:
    """A real progressive JPEG whose first AC scan (and its Huffman table) is repeated ``scans`` times.

    The image is flat, so each repeated scan is ~30 bytes of EOB runs, yet libjpeg makes a
    pass over all 36 M pixels (562,500 blocks) for each: ~550 KB that took 9-16 s to decode here.
    """
    data = encode(Image.new("L", (side, side), 128), "JPEG", progressive=True, quality=90)
    first_sos = data.find(b"\xff\xda")
    dht = data.find(b"\xff\xc4", first_sos)  # the table of the first AC scan
    sos = data.find(b"\xff\xda", dht)
    end = data.find(b"\xff\xc4", sos)  # the next scan's table: the AC scan's data ends here
    assert -1 not in (first_sos, dht, sos, end)
    return data[:end] + data[dht:end] * scans + data[end:]


def jpeg_with_many_markers() -> bytes:
    """A million empty comment segments before the frame header: Pillow reads each in Python."""
    good = encode(photo(), "JPEG")
    return good[:2] + b"\xff\xfe\x00\x02" * 1_000_000 + good[2:]


def jpeg_with_fill_bytes() -> bytes:
    """4 MB of 0xFF fill before a marker: Pillow steps over them one at a time."""
    good = encode(photo(), "JPEG")
    i = good.find(b"\xff\xdb")
    return good[:i] + b"\xff" * 4_000_000 + good[i:]


def png_with_many_chunks() -> bytes:
    """500,000 empty ancillary chunks between IHDR and IDAT."""
    good = encode(photo(), "PNG")
    return good[:33] + png_chunk(b"abCd", b"") * 500_000 + good[33:]


def png_with_many_iccp() -> bytes:
    """3,000 iCCP chunks of 1 KB, each inflating to 1 MB at open (Pillow does not bound these)."""
    good = encode(photo(), "PNG")
    iccp = png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * (2**20 - 1000), 9))
    return good[:33] + iccp * 3000 + good[33:]


def png_with_ztxt_bomb() -> bytes:
    """zTXt chunks inflating to 70 MB of text (Pillow's own text budget refuses it)."""
    good = encode(photo(), "PNG")
    ztxt = png_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * (2**20 - 1000), 9))
    return good[:33] + ztxt * 70 + good[33:]


def gif_with_many_blocks() -> bytes:
    """A comment extension of 2 million one-byte sub-blocks before the first image."""
    good = encode(Image.new("P", (32, 32)), "GIF")
    i = good.find(b"\x2c\x00\x00\x00\x00")  # the first image descriptor
    return good[:i] + b"\x21\xfe" + b"\x01a" * 2_000_000 + b"\x00" + good[i:]


def gif_with_stray_bytes() -> bytes:
    """4 MB of stray bytes before the first image: Pillow skips them one at a time."""
    good = encode(Image.new("P", (32, 32)), "GIF")
    i = good.find(b"\x2c\x00\x00\x00\x00")
    return good[:i] + b"\x00" * 4_000_000 + good[i:]


def tiff_l(width: int, height: int, strips: list[tuple[int, int]], rows_per_strip: int, compression: int = 1,
           pixels: bytes = b"", next_ifd: int = 0) -> bytes:
    """A greyscale TIFF page by hand: ``strips`` are (offset, byte count) pairs."""

    def entry(tag: int, typ: int, count: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, typ, count, value)

    ifd_size = 2 + 8 * 12 + 4
    arrays = 8 + ifd_size + len(pixels)
    n = len(strips)
    offsets = entry(273, 4, n, arrays) if n > 1 else entry(273, 4, 1, strips[0][0])
    counts = entry(279, 4, n, arrays + 4 * n) if n > 1 else entry(279, 4, 1, strips[0][1])
    ifd = (struct.pack("<H", 8) + entry(256, 4, 1, width) + entry(257, 4, 1, height) + entry(258, 3, 1, 8)
           + entry(259, 3, 1, compression) + entry(262, 3, 1, 1) + offsets + entry(278, 4, 1, rows_per_strip) + counts
           + struct.pack("<I", next_ifd))
    tail = b"".join(struct.pack("<I", o) for o, _ in strips) + b"".join(struct.pack("<I", c) for _, c in strips) if n > 1 else b""
    return b"II*\x00" + struct.pack("<I", 8) + ifd + pixels + tail


def tiff_with_many_strips() -> bytes:
    """Uncompressed 16 x 600,000 px, one row per strip: Pillow builds and reads 600,000 tiles in Python."""
    pixels_at = 8 + 2 + 8 * 12 + 4
    return tiff_l(16, 600_000, [(pixels_at, 16)] * 600_000, 1, pixels=b"\x80" * 16)


def bmp_rle8(width: int, height: int, rle: bytes) -> bytes:
    palette = b"\x00\x00\x00\x00" * 256
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rle), 2835, 2835, 256, 0)
    offset = 14 + len(header) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(rle), 0, 0, offset) + header + palette + rle


def bmp_rle_line_padding() -> bytes:
    """1 KB: 16 rows of 2.5 M pixels, each one pixel and an end-of-line code, which Pillow pads pixel by pixel in Python."""
    return bmp_rle8(2_500_000, 16, b"\x01\x05\x00\x00" * 16 + b"\x00\x01")


HOSTILE = {
    "progressive-jpeg-5000-scans": (progressive_jpeg_with_many_scans, ImageTooComplexError, "too many scans"),
    "jpeg-1M-markers": (jpeg_with_many_markers, ImageTooComplexError, "JPEG markers"),
    "jpeg-4MB-fill-bytes": (jpeg_with_fill_bytes, ImageTooComplexError, "JPEG markers and stray bytes"),
    "png-500k-chunks": (png_with_many_chunks, ImageTooComplexError, "PNG chunks"),
    "png-3000-iccp": (png_with_many_iccp, CorruptImageError, "more than one iCCP"),
    "png-ztxt-bomb": (png_with_ztxt_bomb, CorruptImageError, "text chunks"),
    "gif-2M-sub-blocks": (gif_with_many_blocks, ImageTooComplexError, "GIF blocks"),
    "gif-4MB-stray-bytes": (gif_with_stray_bytes, ImageTooComplexError, "GIF blocks"),
    "tiff-600k-strips": (tiff_with_many_strips, ImageTooComplexError, "TIFF strips"),
    "bmp-rle-line-padding": (bmp_rle_line_padding, UnsupportedImageError, "pure Python"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_cpu_exhaustion_is_refused_fast(name):
    build, error, message = HOSTILE[name]
    data = build()
    assert len(data) <= ImageLimits().max_bytes  # every one passes the byte limit: the new checks refuse it
    start = time.perf_counter()
    with pytest.raises(error, match=message) as e:
        load_image(data)
    assert time.perf_counter() - start < BOUND_S
    assert 400 <= e.value.http_status < 500


def test_jpeg_scan_and_segment_limits_are_knobs():
    progressive = encode(photo(256, 256), "JPEG", progressive=True)  # libjpeg writes 10 scans for colour
    assert load_image(progressive).size == (256, 256)
    with pytest.raises(ImageTooComplexError, match="the limit is 5") as e:
        load_image(progressive, ImageLimits(max_jpeg_scans=5))
    assert e.value.http_status == 422
    with pytest.raises(ImageTooComplexError, match="JPEG markers"):
        load_image(progressive, ImageLimits(max_segments=8))
    limits = ImageLimits.from_settings(VisionSettings(max_jpeg_scans=7, max_image_segments=99, max_image_mb=1))
    assert (limits.max_jpeg_scans, limits.max_segments, limits.max_bytes) == (7, 99, 2**20)


def test_jpeg_walk_is_not_fooled_by_scan_markers_inside_segments():
    """0xFFDA inside a comment, an ICC profile or after stuffing is not a scan."""
    data = encode(photo(), "JPEG", comment=b"\xff\xda" * 500, icc_profile=b"\xff\xda\x00\x08" * 5000, restart_marker_blocks=1)
    assert load_image(data, ImageLimits(max_jpeg_scans=1)).size == (64, 48)


def gif_with_many_frames(frames: int) -> bytes:
    """A red 16x16 GIF followed by ``frames`` copies of another GIF's image block."""

    def split(gif: bytes) -> tuple[bytes, bytes]:  # (header with palette, the image block)
        start = 13 + (3 << ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)
        assert gif[start] == 0x2C and gif.endswith(b";")  # a still GIF: no extensions
        return gif[:start], gif[start:-1]

    head, first = split(encode(Image.new("RGB", (16, 16), (255, 0, 0)), "GIF"))
    _, other = split(encode(Image.new("RGB", (16, 16), (0, 0, 255)), "GIF"))
    return head + first + other * frames + b";"


def tiff_with_many_pages(pages: int) -> bytes:
    """``pages`` 16x16 pages chained by hand; the first one white, the others black."""
    def entry(tag: int, typ: int, count: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, typ, count, value)

    out = bytearray(b"II*\x00" + struct.pack("<I", 8 + 512) + b"\xff" * 256 + b"\x00" * 256)
    for k in range(pages):
        nxt = len(out) + 102 if k < pages - 1 else 0
        pixels = 8 if k == 0 else 8 + 256
        out += (struct.pack("<H", 8) + entry(256, 3, 1, 16) + entry(257, 3, 1, 16) + entry(258, 3, 1, 8) + entry(259, 3, 1, 1)
                + entry(262, 3, 1, 1) + entry(273, 4, 1, pixels) + entry(278, 3, 1, 16) + entry(279, 4, 1, 256) + struct.pack("<I", nxt))
    return bytes(out)


def animation(fmt: str, frames: int) -> bytes:
    images = [Image.new("RGB", (16, 16), (255, 0, 0))] + [Image.new("RGB", (16, 16), (0, k % 256, 255)) for k in range(frames - 1)]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=10, lossless=True)


MANY_FRAMES = {
    "tiff-100-pages": (lambda: tiff_with_many_pages(100), (255, 255, 255)),
    "gif-100k-frames": (lambda: gif_with_many_frames(100_000), (255, 0, 0)),
    "webp-2000-frames": (lambda: animation("WEBP", 2000), (255, 0, 0)),
    "apng-2000-frames": (lambda: animation("PNG", 2000), (255, 0, 0)),
}


@pytest.mark.parametrize("name", list(MANY_FRAMES))
def test_only_the_first_frame_is_read(name):
    build, colour = MANY_FRAMES[name]
    data = build()
    start = time.perf_counter()
    img = load_image(data)
    assert time.perf_counter() - start < BOUND_S
    assert img.size == (16, 16) and tuple(np.asarray(img)[8, 8]) == colour


def test_tiff_with_thousands_of_pages_is_refused_without_walking_them():
    data = tiff_with_many_pages(100_000)
    start = time.perf_counter()
    with pytest.raises(ImageTooComplexError, match="TIFF pages") as e:
        load_image(data)
    assert time.perf_counter() - start < 0.05 and e.value.http_status == 422
    assert load_image(tiff_with_many_pages(3), ImageLimits(max_frames=3)).size == (16, 16)
    with pytest.raises(ImageTooComplexError):
        load_image(tiff_with_many_pages(4), ImageLimits(max_frames=3))


def test_tiff_page_claiming_few_pixels_over_a_huge_strip():
    """16x16 px, but its deflate strip would inflate to 64 MB: only 256 bytes are inflated."""
    compressor = zlib.compressobj(9)
    strip = b"".join(compressor.compress(b"\x07" * 2**20) for _ in range(64)) + compressor.flush()
    pixels_at = 8 + 2 + 8 * 12 + 4
    data = tiff_l(16, 16, [(pixels_at, len(strip))], 16, compression=8, pixels=strip)
    start = time.perf_counter()
    img = load_image(data)
    assert time.perf_counter() - start < BOUND_S
    assert img.size == (16, 16) and np.asarray(img).max() == 7


# --- privacy: nothing of the file's metadata survives ---------------------------------------------


@pytest.mark.parametrize("orientation", [1, 6])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_no_metadata_survives(fmt, orientation):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "SpyCam"
    exif[ExifTags.Base.BodySerialNumber] = "SN-123456"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (55.0, 45.0, 21.0)
    gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = "E", (37.0, 37.0, 4.0)
    extra = {"JPEG": {"comment": b"taken at home"}, "PNG": {}, "WEBP": {"xmp": b"<x:xmpmeta>home</x:xmpmeta>"}, "TIFF": {}}[fmt]
    data = encode(photo(), fmt, exif=exif.tobytes(), icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(), **extra)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the file does carry GPS

    img = load_image(data)
    assert img.size == ((48, 64) if orientation == 6 else (64, 48))  # orientation applied before it is dropped
    assert img.info == {}
    exif_out = img.getexif()
    assert len(exif_out) == 0 and not exif_out.get_ifd(ExifTags.IFD.GPSInfo) and not exif_out.get_ifd(ExifTags.IFD.Exif)
    assert type(img) is Image.Image  # a plain image: no file object behind it to read tags from
    saved = encode(img, "JPEG")  # and nothing comes back when it is written out again
    assert b"SpyCam" not in saved and not Image.open(io.BytesIO(saved)).getexif()
