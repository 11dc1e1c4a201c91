"""The gateway's storage I/O: an upload written (`Staging`), an output read (`Reader`), on a
`file://` root (`LocalStore`) or a `gs://` one (`CloudStore`, google-cloud-storage). Thin: where
to write and what may be read is decided by layout.py and uploads.py; this does it, atomically.
Every call blocks: the routes make them in a thread.

- file://: an upload is written into `_uploads/.partial-<id>/` and renamed to `_uploads/<id>/`
  once every file is in and flushed, so it appears whole or not at all; abort removes the partial
  folder. Paths are walked a folder at a time from the root with O_NOFOLLOW: a symbolic link
  anywhere below the root (a stage pod of the namespace can make one in its lane) is refused,
  never followed into another namespace's lane or out of the storage.
- gs://: each file goes up through a resumable session, which becomes an object only when it is
  finalized (GCS's temporary name); `ifGenerationMatch=0` so nothing is ever overwritten. Abort
  cancels the open session and deletes the objects the upload had finished. Reads are of one
  generation of the object, in ranges.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from . import ranges
from .layout import UPLOADS, StorageRoot
from .uploads import Staging, Writer

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Bucket, Client
    from google.cloud.storage.fileio import BlobWriter

log = logging.getLogger(__name__)

# A resumable upload's chunk (a multiple of 256 KiB): what one upload holds in memory at most.
UPLOAD_CHUNK = 2 * 1024 * 1024
GCS_TIMEOUT = 60.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class StorageRefused(Exception):
    """The path is not what it must be: a link, or not a folder or a plain file."""


class ObjectMissing(Exception):
    """No such file or object."""


class StorageFailed(Exception):
    """The storage failed or refused the gateway (its log says which)."""


@dataclass(frozen=True)
class Version:
    """One version of a stored file, for downloads."""

    size: int
    etag: str
    modified: datetime | None


class Reader(Protocol):
    version: Version

    def read(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class Store(Protocol):
    root: StorageRoot

    def stage(self, namespace: str, upload_id: str) -> Staging: ...

    def open(self, uri: str) -> Reader: ...


def store_for(root: StorageRoot) -> Store:
    return CloudStore(root) if root.scheme == "gs" else LocalStore(root)


# --- file://


@contextlib.contextmanager
def _local_errors(uri: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise ObjectMissing(f"{uri} does not exist") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise StorageRefused(f"{uri}: a symbolic link or a file is where a folder or a "
                                 "file of the storage must be") from None
        log.error("storage error on %s: %s", uri, e)
        raise StorageFailed(f"{uri}: {e.strerror}") from None


class LocalStore:
    def __init__(self, root: StorageRoot) -> None:
        self.root = root
        self.base = Path(urllib.parse.urlsplit(root.uri).path)

    def _walk(self, parts: list[str], create: bool) -> int:
        """An open descriptor of the folder `parts` below the root, reached without following
        a link; made where missing if `create`."""
        fd = os.open(self.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                below = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = below
        except BaseException:
            os.close(fd)
            raise
        return fd

    def stage(self, namespace: str, upload_id: str) -> LocalStaging:
        uploads = self.root.uploads(namespace)
        with _local_errors(uploads):
            # The root itself is the administrator's (a volume's mount point, or a local
            # folder the operator has not written to yet).
            self.base.mkdir(parents=True, exist_ok=True)
            folder = self._walk([namespace, UPLOADS], create=True)
            try:
                return LocalStaging(folder, upload_id)
            except BaseException:
                os.close(folder)
                raise

    def open(self, uri: str) -> LocalReader:
        parts = self.root.parts(uri)
        with _local_errors(uri):
            folder = self._walk(parts[:-1], create=False)
            try:
                # O_NONBLOCK: a FIFO put where the file should be must not hang the open.
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                             | os.O_NONBLOCK, dir_fd=folder)
            finally:
                os.close(folder)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                os.close(fd)
                raise StorageRefused(f"{uri} is not a plain file")
        return LocalReader(fd, Version(
            size=info.st_size,
            # Outputs are written to a temporary name and renamed: a new version is a new inode.
            etag=ranges.etag(info.st_ino, info.st_size, info.st_mtime_ns),
            modified=datetime.fromtimestamp(info.st_mtime, UTC)))


class LocalWriter:
    def __init__(self, fd: int, name: str) -> None:
        self.fd: int | None = fd
        self.name = name

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        with _local_errors(self.name):  # a full disk, say
            while view:
                view = view[os.write(self.fd, view):]

    def finish(self) -> None:
        assert self.fd is not None
        with _local_errors(self.name):
            os.fsync(self.fd)
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class LocalStaging:
    """`_uploads/.partial-<id>/`, renamed to `_uploads/<id>/` on commit."""

    def __init__(self, uploads: int, upload_id: str) -> None:
        self._uploads = uploads
        self._partial = f".partial-{upload_id}"
        self._final = upload_id
        os.mkdir(self._partial, 0o755, dir_fd=uploads)
        self._folder = os.open(self._partial, _DIR_FLAGS, dir_fd=uploads)
        self._writers: dict[str, LocalWriter] = {}

    def file(self, name: str, media_type: str) -> Writer:
        with _local_errors(name):
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=self._folder)
        self._writers[name] = writer = LocalWriter(fd, name)
        return writer

    def commit(self) -> None:
        with _local_errors(self._final):
            os.fsync(self._folder)
            os.rename(self._partial, self._final, src_dir_fd=self._uploads,
                      dst_dir_fd=self._uploads)
            os.fsync(self._uploads)  # the rename itself, durable
        self._close()

    def abort(self) -> None:
        for name, writer in self._writers.items():
            writer.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self._folder)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(self._partial, dir_fd=self._uploads)
        self._close()

    def _close(self) -> None:
        for fd in (self._folder, self._uploads):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class LocalReader:
    fd: int
    version: Version

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


# --- gs://


@contextlib.contextmanager
def _cloud_errors(uri: str) -> Iterator[None]:
    from google.api_core import exceptions as api

    try:
        yield
    except api.NotFound:
        raise ObjectMissing(f"{uri} does not exist") from None
    except (StorageRefused, ObjectMissing):
        raise
    except Exception as e:
        # Forbidden (the gateway's credentials), 5xx after the client's retries, a checksum
        # mismatch, no network: the gateway's problem, not the caller's.
        log.error("storage error on %s: %s", uri, e)
        raise StorageFailed(f"{uri}: the storage failed ({type(e).__name__})") from None


class CloudStore:
    """gs:// through google-cloud-storage; credentials found the standard way (Workload
    Identity, GOOGLE_APPLICATION_CREDENTIALS), or the emulator STORAGE_EMULATOR_HOST names."""

    def __init__(self, root: StorageRoot, client: Client | None = None,
                 chunk_size: int = UPLOAD_CHUNK, timeout: float = GCS_TIMEOUT) -> None:
        self.root = root
        parts = urllib.parse.urlsplit(root.uri)
        self.bucket_name = parts.netloc
        self.base = parts.path.lstrip("/")  # the object prefix of the root, "" for a bucket
        self._client = client
        self.chunk_size = chunk_size
        self.timeout = timeout

    @property
    def bucket(self) -> Bucket:
        if self._client is None:
            from google.cloud import storage

            # Made on first use: a gateway whose storage credentials are missing still serves
            # VideoJobs, and says why uploads fail. project=None: objects need no project.
            self._client = storage.Client(project=None)
        return self._client.bucket(self.bucket_name)

    def object_name(self, uri: str) -> str:
        return "/".join(p for p in [self.base, *self.root.parts(uri)] if p)

    def stage(self, namespace: str, upload_id: str) -> CloudStaging:
        prefix = self.root.upload(namespace, upload_id)
        with _cloud_errors(prefix):
            return CloudStaging(self, prefix)

    def open(self, uri: str) -> CloudReader:
        name = self.object_name(uri)
        with _cloud_errors(uri):
            blob = self.bucket.get_blob(name, timeout=self.timeout)
            if blob is None:
                raise ObjectMissing(f"{uri} does not exist")
            generation = int(blob.generation)
            updated = blob.updated
            return CloudReader(
                self.bucket.blob(name, generation=generation), uri, self.timeout,
                Version(size=int(blob.size or 0), etag=ranges.etag("gs", generation),
                        modified=updated if isinstance(updated, datetime) else None))


@dataclass
class CloudWriter:
    uri: str
    writer: BlobWriter
    blob: Blob
    finishing: bool = False  # the last chunk was sent: the object may exist

    def write(self, data: bytes) -> None:
        with _cloud_errors(self.uri):
            self.writer.write(data)

    def finish(self) -> None:
        self.finishing = True
        with _cloud_errors(self.uri):
            self.writer.close()  # the last chunk: the object exists from here on


@dataclass
class CloudStaging:
    store: CloudStore
    prefix: str
    writers: list[CloudWriter] = field(default_factory=list)

    def file(self, name: str, media_type: str) -> Writer:
        from google.cloud.storage.fileio import BlobWriter

        uri = self.prefix + name
        blob = self.store.bucket.blob(self.store.object_name(uri))
        writer = BlobWriter(blob, chunk_size=self.store.chunk_size, content_type=media_type,
                            # Never over an object that exists. The client compares the
                            # crc32c GCS stored with that of the bytes sent, and fails the
                            # upload (so abort deletes the object) if they differ.
                            if_generation_match=0, checksum="crc32c",
                            timeout=self.store.timeout)
        self.writers.append(made := CloudWriter(uri, writer, blob))
        return made

    def commit(self) -> None:
        """Nothing to do: each object was finalized when its file was complete."""

    def abort(self) -> None:
        from google.api_core import exceptions as api

        failed = []
        for w in self.writers:
            try:
                if w.finishing:
                    # Under this upload's own random folder: nobody else wrote it.
                    with contextlib.suppress(api.NotFound):
                        w.blob.delete(timeout=self.store.timeout)
                if not w.writer.closed:
                    w.writer.terminate()  # cancels the session: it never becomes an object
            except Exception as e:  # the others are still to be removed
                log.error("removing %s failed: %s", w.uri, e)
                failed.append(w.uri)
        if failed:
            raise StorageFailed(f"could not remove {', '.join(failed)}")


@dataclass
class CloudReader:
    blob: Blob  # of one generation
    uri: str
    timeout: float
    version: Version

    def read(self, offset: int, length: int) -> bytes:
        with _cloud_errors(self.uri):
            data: bytes = self.blob.download_as_bytes(
                start=offset, end=offset + length - 1, checksum=None, timeout=self.timeout)
            return data

    def close(self) -> None:
        """Nothing is held open."""
