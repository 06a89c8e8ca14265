"""Every hostile or odd image gets its own clear error or a correct RGB result."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from visearch.vision.images import (
    CorruptImageError,
    EmptyImageError,
    ImageLimits,
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
