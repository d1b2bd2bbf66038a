"""Where Ray Train runs live: a local directory or any pyarrow / fsspec URI (``s3://``, ``gs://``, ``hdfs://``,
``abfs://`` ...), opened once and used for the small files this project keeps beside Ray's own.

A multi-node cluster needs storage every node can reach (an object store or NFS); a local path only works on a
single machine.

Example:
    >>> storage = open_storage("s3://bucket/unlearn-runs")
    >>> storage.write_text(storage.join("pretrain-1a2b", "unlearn_run.json"), "{}")
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from trainables.errors import UserError

DEFAULT_STORAGE = "~/ray_results"
STORAGE_ENV = "UNLEARN_STORAGE"  # the default on a cluster (cluster.yaml sets it to the shared bucket)


@dataclass(frozen=True)
class Storage:
    uri: str                      # what Ray gets as storage_path (local paths made absolute)
    fs: pafs.FileSystem
    root: str                     # the same location as a path on ``fs``
    via_fsspec: bool = False      # Ray cannot resolve it by itself: hand it the filesystem object

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def display(self, *parts: str) -> str:
        return "/".join([self.uri.rstrip("/"), *parts])

    def ray_storage_kwargs(self) -> dict[str, Any]:
        if self.via_fsspec:
            return {"storage_path": self.root, "storage_filesystem": self.fs}
        return {"storage_path": self.uri}

    def exists(self, path: str) -> bool:
        return self._io(lambda: self.fs.get_file_info(path).type != pafs.FileType.NotFound, path)

    def read_text(self, path: str) -> str | None:
        if not self.exists(path):
            return None

        def read() -> str:
            with self.fs.open_input_stream(path) as f:
                return f.read().decode()

        return self._io(read, path)

    def write_text(self, path: str, text: str) -> None:
        """Write whole or not at all: through a temporary name on local disks (object stores write whole)."""
        def write() -> None:
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            target = f"{path}.tmp-{uuid.uuid4().hex[:8]}" if self.is_local else path
            try:
                with self.fs.open_output_stream(target) as f:
                    f.write(text.encode())
                if target != path:
                    self.fs.move(target, path)
            except BaseException:  # an error, Ctrl-C or SIGTERM: no hidden .tmp- file left behind
                if target != path and self.fs.get_file_info(target).type != pafs.FileType.NotFound:
                    self.fs.delete_file(target)
                raise

        self._io(write, path)

    def listdir(self, path: str) -> list[str]:
        """Names directly under ``path`` (empty when it does not exist)."""
        if not self.exists(path):
            return []
        infos = self._io(lambda: self.fs.get_file_info(pafs.FileSelector(path)), path)
        return sorted(info.base_name for info in infos)

    def delete_file(self, path: str) -> None:
        if self.exists(path):
            self._io(lambda: self.fs.delete_file(path), path)

    def _io(self, fn, path: str):
        try:
            return fn()
        except (OSError, ValueError) as exc:  # pyarrow raises OSError subclasses for unreachable/denied storage
            raise UserError(f"cannot access run storage at {path} ({self.uri}): {exc}") from None


def open_storage(uri: str | os.PathLike | None) -> Storage:
    """A local path (``~`` expanded, made absolute), a pyarrow URI, or an fsspec URI whose library is installed.
    ``None``: ``$UNLEARN_STORAGE``, else ``~/ray_results``."""
    text = str(uri) if uri is not None else (os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE)
    if not text.strip():
        raise UserError("--storage is empty; give a directory or a URI such as s3://bucket/runs")
    if "://" not in text:
        path = str(Path(text).expanduser().resolve())
        return Storage(path, pafs.LocalFileSystem(), path)
    try:
        fs, root = pafs.FileSystem.from_uri(text)
        return Storage(text, fs, root)
    except Exception as arrow_exc:  # noqa: BLE001  unknown scheme: fall back to fsspec below
        arrow_error = arrow_exc
    try:
        import fsspec
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fs, root = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:
        raise UserError(f"--storage {text}: unsupported storage URI ({arrow_error}; fsspec: {exc}); use a local "
                        f"path, s3://, gs://, hdfs:// or an fsspec URI whose library is installed") from None
    return Storage(text, PyFileSystem(FSSpecHandler(fs)), root, via_fsspec=True)
