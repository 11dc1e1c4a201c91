"""The operator's few storage operations, for the stage cache (cache_lookup.py): read a small
object, report an object's size and md5, copy one object to another place; and for its
housekeeping (cache_sweeper.py): list a folder's objects or subfolders, delete a folder.
`file://` and `gs://` (google-cloud-storage, imported only when a gs:// root is used; the
emulator through STORAGE_EMULATOR_HOST, as the worker does).

Blocking: called on threads, never on the event loop. A copy is atomic (a local copy goes to
a hidden name in the target's folder, then is renamed; a GCS copy is a server-side rewrite), and
reports the size and md5 of what was written, so the caller checks the copy, not the source.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import hashlib
import os
import shutil
import stat
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Protocol

CHUNK = 4 * 2**20

Sum = tuple[int, str]  # (bytes, md5 as base64 of the digest, as GCS reports it)
# An object under a listed folder: its path relative to the folder, size, last modification.
Listed = tuple[str, int, dt.datetime]


class CacheStorage(Protocol):
    def read(self, uri: str, max_bytes: int) -> bytes | None: ...

    def checksum(self, uri: str) -> Sum | None: ...

    def copy(self, source: str, target: str) -> Sum | None: ...

    def delete(self, uri: str) -> None: ...

    def contained(self, uri: str, folder: str) -> bool: ...

    def objects(self, folder: str) -> list[Listed]: ...

    def folders(self, folder: str) -> list[str]: ...

    def delete_folder(self, folder: str) -> None: ...


def _open(path: Path) -> BinaryIO:
    """A regular file opened for reading, never through a symbolic link: a tenant who can
    write its own cache folder must not make the operator, which reads every namespace's, copy
    another namespace's file (O_NOFOLLOW refuses a link as the last component)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        if err.errno == errno.ELOOP:  # the name is a link
            raise IsADirectoryError(f"{path} is a symbolic link") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _path(uri: str) -> Path:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ValueError(f"{uri} is not a file:/// URI")
    return Path(urllib.parse.unquote(parts.path))


class LocalStorage:
    """file:// storage. Folders and files it creates take the owner and group of the folder
    above (when it runs as root), so the stage pods that write next to them may."""

    def read(self, uri: str, max_bytes: int) -> bytes | None:
        try:
            with _open(_path(uri)) as f:
                data = f.read(max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        if len(data) > max_bytes:
            raise ValueError(f"{uri} is larger than {max_bytes} bytes")
        return data

    def checksum(self, uri: str) -> Sum | None:
        md5, size = hashlib.md5(usedforsecurity=False), 0
        try:
            with _open(_path(uri)) as f:
                while chunk := f.read(CHUNK):
                    md5.update(chunk)
                    size += len(chunk)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return size, base64.b64encode(md5.digest()).decode()

    def copy(self, source: str, target: str) -> Sum | None:
        src, dst = _path(source), _path(target)
        md5, size = hashlib.md5(usedforsecurity=False), 0
        _make_folders(dst.parent)
        tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex}.tmp"
        try:
            with _open(src) as f, tmp.open("xb") as out:
                while chunk := f.read(CHUNK):
                    md5.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            _like_parent(tmp)
            tmp.replace(dst)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return size, base64.b64encode(md5.digest()).decode()

    def delete(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            _path(uri).unlink()

    def contained(self, uri: str, folder: str) -> bool:
        """Whether `uri` resolves (links followed) to a place inside `folder`: a link anywhere
        on its way, made by a tenant in its own cache, must not lead the operator elsewhere."""
        real = os.path.realpath(_path(uri))
        return real.startswith(os.path.realpath(_path(folder)) + os.sep)

    def objects(self, folder: str) -> list[Listed]:
        root = _path(folder)
        found: list[Listed] = []
        for where, _, files in os.walk(root):
            for name in files:
                path = Path(where) / name
                with contextlib.suppress(FileNotFoundError):  # gone since the walk saw it
                    st = path.stat()
                    found.append((path.relative_to(root).as_posix(), st.st_size,
                                  dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)))
        return found

    def folders(self, folder: str) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(_path(folder)) if e.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def delete_folder(self, folder: str) -> None:
        path = _path(folder)
        shutil.rmtree(path, ignore_errors=True)
        # The entry's folder, once its last writer went (a writer arriving now makes its own).
        with contextlib.suppress(OSError):
            path.parent.rmdir()


def _make_folders(folder: Path) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        with contextlib.suppress(FileExistsError):
            f.mkdir(mode=0o775)
            _like_parent(f)


def _like_parent(path: Path) -> None:
    if os.geteuid() != 0:
        return
    st = path.parent.stat()
    os.chown(path, st.st_uid, st.st_gid)
    if path.is_dir():
        path.chmod(st.st_mode & 0o7777)


def _split_gs(uri: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "gs" or not parts.netloc or not parts.path.strip("/"):
        raise ValueError(f"{uri} is not a gs://bucket/object URI")
    return parts.netloc, parts.path.lstrip("/")


class CloudStorage:
    """gs:// storage, through google-cloud-storage."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import storage  # only where a gs:// root is used

            # project=None: objects need no project; the client honours
            # STORAGE_EMULATOR_HOST by itself.
            self._client = storage.Client(project=None)
        return self._client

    def _blob(self, uri: str) -> Any:
        bucket, name = _split_gs(uri)
        return self.client.bucket(bucket).blob(name)

    def read(self, uri: str, max_bytes: int) -> bytes | None:
        from google.api_core.exceptions import NotFound

        bucket, name = _split_gs(uri)
        blob = self.client.bucket(bucket).get_blob(name)
        if blob is None:
            return None
        if (blob.size or 0) > max_bytes:
            raise ValueError(f"{uri} is larger than {max_bytes} bytes")
        try:
            data: bytes = blob.download_as_bytes()
        except NotFound:
            return None
        return data

    def checksum(self, uri: str) -> Sum | None:
        bucket, name = _split_gs(uri)
        blob = self.client.bucket(bucket).get_blob(name)
        return None if blob is None else (int(blob.size or 0), str(blob.md5_hash or ""))

    def copy(self, source: str, target: str) -> Sum | None:
        from google.api_core.exceptions import NotFound

        (src_bucket, src_name), (dst_bucket, dst_name) = _split_gs(source), _split_gs(target)
        src = self.client.bucket(src_bucket).blob(src_name)
        dst = self.client.bucket(dst_bucket).blob(dst_name)
        try:
            token, _, _ = dst.rewrite(src)
            while token is not None:  # large objects are copied in several calls
                token, _, _ = dst.rewrite(src, token=token)
        except NotFound:
            return None
        dst.reload()
        return int(dst.size or 0), str(dst.md5_hash or "")

    def delete(self, uri: str) -> None:
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            self._blob(uri).delete()

    def contained(self, uri: str, folder: str) -> bool:
        """Object names are names: nothing on the way can lead elsewhere."""
        return uri.startswith(folder.rstrip("/") + "/")

    def _prefix(self, folder: str) -> tuple[str, str]:
        parts = urllib.parse.urlsplit(folder)
        if parts.scheme != "gs" or not parts.netloc:
            raise ValueError(f"{folder} is not a gs://bucket/folder URI")
        prefix = parts.path.strip("/")
        return parts.netloc, f"{prefix}/" if prefix else ""

    def objects(self, folder: str) -> list[Listed]:
        bucket, prefix = self._prefix(folder)
        return [(blob.name[len(prefix):], int(blob.size or 0), blob.updated)
                for blob in self.client.list_blobs(bucket, prefix=prefix)]

    def folders(self, folder: str) -> list[str]:
        bucket, prefix = self._prefix(folder)
        blobs = self.client.list_blobs(bucket, prefix=prefix, delimiter="/")
        for _ in blobs.pages:  # the prefixes are known once every page was read
            pass
        return sorted(p[len(prefix):].rstrip("/") for p in blobs.prefixes)

    def delete_folder(self, folder: str) -> None:
        from google.api_core.exceptions import NotFound

        bucket, prefix = self._prefix(folder)
        if not prefix:
            raise ValueError(f"refusing to delete the whole bucket {folder}")
        # The manifest first, when it is in the folder: a reader never finds one naming
        # artifacts already gone (it would take the entry for corrupt, which is harmless).
        blobs = sorted(self.client.list_blobs(bucket, prefix=prefix),
                       key=lambda b: not b.name.endswith("/manifest.json"))
        for blob in blobs:
            with contextlib.suppress(NotFound):
                blob.delete()


class Storage:
    """Dispatches on the scheme."""

    def __init__(self, local: CacheStorage | None = None,
                 cloud: CacheStorage | None = None) -> None:
        self.local = local or LocalStorage()
        self._cloud = cloud

    def _for(self, uri: str) -> CacheStorage:
        scheme = urllib.parse.urlsplit(uri).scheme
        if scheme == "file":
            return self.local
        if scheme == "gs":
            if self._cloud is None:
                self._cloud = CloudStorage()
            return self._cloud
        raise ValueError(f"{uri}: the cache lives in gs:// or file:// storage")

    def read(self, uri: str, max_bytes: int) -> bytes | None:
        return self._for(uri).read(uri, max_bytes)

    def checksum(self, uri: str) -> Sum | None:
        return self._for(uri).checksum(uri)

    def copy(self, source: str, target: str) -> Sum | None:
        if urllib.parse.urlsplit(source).scheme != urllib.parse.urlsplit(target).scheme:
            raise ValueError(f"cannot copy {source} to {target}: another kind of storage")
        return self._for(source).copy(source, target)

    def delete(self, uri: str) -> None:
        self._for(uri).delete(uri)

    def contained(self, uri: str, folder: str) -> bool:
        return self._for(uri).contained(uri, folder)

    def objects(self, folder: str) -> list[Listed]:
        return self._for(folder).objects(folder)

    def folders(self, folder: str) -> list[str]:
        return self._for(folder).folders(folder)

    def delete_folder(self, folder: str) -> None:
        self._for(folder).delete_folder(folder)
