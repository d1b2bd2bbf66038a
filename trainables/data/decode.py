"""Decode one encoded image (bytes, a local path or a pyarrow/fsspec URI) to a uint8 (S, S, 3) array.

The same decode as the in-memory ``imagefolder:`` loader (PIL, RGB, ``resize((S, S))``), so a streamed record
and the record loaded up front are the same pixels. A file that cannot be read or decoded is a
:class:`UserError` that names the record.

Example:
    >>> decode_image("/data/cats/001.png", 32, key="cats/001.png").shape
    (32, 32, 3)
"""

from __future__ import annotations

import io

import numpy as np

from trainables.errors import UserError


def read_bytes(uri: str) -> bytes:
    """The bytes of a local path or of a URI pyarrow understands (``s3://``, ``gs://``, ``hdfs://``)."""
    if "://" not in uri:
        with open(uri, "rb") as f:
            return f.read()
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def decode_image(data: bytes | str, image_size: int, *, key: str | None = None) -> np.ndarray:
    """``data`` (encoded bytes, or where to read them) as uint8 (image_size, image_size, 3), RGB."""
    from PIL import Image, UnidentifiedImageError

    location = data if isinstance(data, str) else None
    name = f"record {key or location or '<bytes>'!r}" + (f" ({location})" if key and location else "")
    try:
        raw = read_bytes(data) if isinstance(data, str) else data
    except OSError as exc:
        raise UserError(f"cannot read the image of {name}: {exc}") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            array = np.array(image.convert("RGB").resize((image_size, image_size)), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as exc:
        raise UserError(f"cannot decode the image of {name}: {exc}") from None
    return array
