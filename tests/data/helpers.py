"""Generated JPEGs for dataset tests."""

from __future__ import annotations

import io

from PIL import Image


def jpeg(shade: int, size: tuple[int, int] = (24, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (shade % 256, (shade * 7) % 256, (shade * 13) % 256)).save(out, format="JPEG")
    return out.getvalue()
