"""Where a record's bytes live: a local path or a URI read through pyarrow's filesystems (fsspec as a fallback).

A string with a ``scheme://`` prefix is a URI (``file://``, ``s3://``, ``gs://``, ``hdfs://``, ``abfs://``, ...):
``pyarrow.fs.FileSystem.from_uri`` resolves it, and any scheme pyarrow does not know goes to ``fsspec`` when it is
installed. Anything else is a local path. Filesystems are cached per process (they hold connections).

Example:
    >>> is_uri("s3://bucket/a.png"), is_uri("/data/a.png"), is_uri("C:/x.png")
    (True, False, False)
    >>> join("s3://bucket/sets/m.parquet", "img/a.png"), join("file:///data/sets/m.csv", "../img/a.png")
    ('s3://bucket/sets/img/a.png', 'file:///data/img/a.png')
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")


def is_uri(location: str) -> bool:
    """True for ``scheme://...`` (a one-letter scheme would be a Windows drive, so two letters at least)."""
    return bool(_SCHEME.match(location))


def join(base_file: str, relative: str) -> str:
    """``relative`` resolved against the directory of ``base_file`` (a path or a URI); absolute paths and URIs as
    given."""
    if is_uri(relative) or Path(relative).is_absolute():
        return relative
    if is_uri(base_file):  # object stores do not resolve "..": normalise here
        scheme, _, rest = base_file.partition("://")
        return f"{scheme}://{posixpath.normpath(posixpath.join(posixpath.dirname(rest), relative))}"
    return str(Path(base_file).expanduser().resolve().parent / relative)


_FILESYSTEMS: dict[str, tuple[object, int]] = {}  # "scheme://host" -> (filesystem, chars of the rest to drop)


def _split(uri: str):
    """(filesystem, path inside it) for a URI; ``None`` filesystem when pyarrow does not know the scheme. One
    filesystem per scheme and host (creating an S3 one can take a network round trip)."""
    from pyarrow import ArrowInvalid, fs

    scheme, _, rest = uri.partition("://")
    root = f"{scheme}://{rest.split('/', 1)[0]}"
    if root in _FILESYSTEMS and "?" not in uri:
        filesystem, drop = _FILESYSTEMS[root]
        return filesystem, rest[drop:]
    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
    except ArrowInvalid:
        return None, uri
    if "?" not in uri and rest.endswith(path):
        _FILESYSTEMS[root] = (filesystem, len(rest) - len(path))
    return filesystem, path


def read_bytes(location: str) -> bytes:
    """The whole file at a local path or URI. Raises ``OSError`` (pyarrow's errors are ``OSError`` subclasses too)
    when it cannot be read."""
    if not is_uri(location):
        with open(location, "rb") as f:
            return f.read()
    filesystem, path = _split(location)
    if filesystem is not None:
        with filesystem.open_input_stream(path) as f:
            return f.read()
    try:
        import fsspec
    except ImportError:
        raise OSError(f"no filesystem for {location!r}: pyarrow does not know the scheme and fsspec is not "
                      f"installed") from None
    with fsspec.open(location, "rb") as f:
        return f.read()


def exists(location: str) -> bool:
    """Whether a local file exists (URIs are not checked here: a remote stat per record is slow; reads fail with
    the record's key instead)."""
    return is_uri(location) or Path(location).is_file()
