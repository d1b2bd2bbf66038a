"""One image file (bytes, a local path or a URI) to a uint8 RGB array at the job's image size.

The one decoder of file-backed data: the lazy in-process reader (:class:`trainables.data.lazy.LazyImages`) and
any streaming reader use it, so every path sees the same pixels. It matches the former eager ``imagefolder``
loader exactly: PIL, ``convert("RGB")`` (grayscale and alpha images become 3 channels), then PIL's default
``resize`` to (S, S) without keeping the aspect ratio.

Example:
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.fromarray(np.zeros((10, 12), np.uint8)).save(buf, "PNG")
    >>> decode_image(buf.getvalue(), 16).shape
    (16, 16, 3)
"""

from __future__ import annotations

import io
import os

import numpy as np

from trainables.data.files import read_bytes
from trainables.errors import UserError


def _name(key: str | None, location: str | None) -> str:
    if key is not None and location is not None and key != location:
        return f"record {key!r} ({location})"
    return f"record {key or location or '<bytes>'!r}"


def decode_image(data: bytes | str | os.PathLike, image_size: int, *, key: str | None = None) -> np.ndarray:
    """(S, S, 3) uint8 RGB from encoded bytes or the path / URI of an image file.

    ``key`` names the record in errors (default: the path). A file that cannot be read or decoded raises
    :class:`~trainables.errors.UserError` naming the record, so a bad image mid-epoch is one clear line."""
    from PIL import Image, UnidentifiedImageError

    location = None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        location = os.fspath(data)
        try:
            data = read_bytes(location)
        except OSError as exc:
            raise UserError(f"cannot read the image of {_name(key, location)}: {exc}") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            rgb = img.convert("RGB").resize((image_size, image_size))
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:  # OSError: truncated
        reason = "not an image format PIL can read" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise UserError(f"cannot decode the image of {_name(key, location)}: {reason}") from None
    return np.array(rgb, dtype=np.uint8)  # a writable copy
