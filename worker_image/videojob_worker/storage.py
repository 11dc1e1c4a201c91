"""Storage: where artifacts, inputs and the final video live, behind one small interface.

`Storage` takes URIs and dispatches on the scheme to a `StorageBackend`:

- `file:///path` — `LocalFiles`: local files (a local run, or a volume mounted into every stage
  pod);
- `gs://bucket/object` — `GoogleCloudStorage`: Google Cloud Storage through google-cloud-storage,
  credentials found the standard way (GOOGLE_APPLICATION_CREDENTIALS, Workload Identity, the
  metadata server), or the emulator named by STORAGE_EMULATOR_HOST;
- `http://`, `https://` — `Web`: read-only, for input images and audio, within the
  administrator's fetch policy (fetch_policy.py).

Writes are atomic. A local write goes to a hidden temporary name in the same directory and is
renamed over the final name once complete and flushed. A GCS object only becomes visible when its
upload is finalized, and the upload carries the crc32c of the whole file, so the server refuses
to finalize corrupted data: the resumable-upload session is the temporary name. Either way a
failed, retried or cancelled stage never leaves a half file under a final name.

Transient errors (connection failures, timeouts, HTTP 408/429/5xx, checksum mismatches) are
retried with backoff (`retry.RetryPolicy`), then raised as `TransientError`. A missing object
raises `ObjectNotFound` and a refused one `AccessDenied`; the caller decides whether that is the
user's bad input (an image) or a transient condition (an artifact of an earlier stage).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

import google_crc32c

from videojob_common.addresses import pinned
from videojob_worker.cancellation import Cancellation
from videojob_worker.fetch_policy import ENV as FETCH_POLICY_ENV
from videojob_worker.fetch_policy import (
    MAX_REDIRECTS,
    FetchPolicy,
    Resolver,
    Unreachable,
    system_resolver,
    target,
)
from videojob_worker.retry import DEFAULT_POLICY, RetryPolicy, with_retries

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Client

T = TypeVar("T")

COPY_CHUNK = 8 * 2**20
# Objects above this size go up through a resumable session (8 MiB chunks, each retried on its
# own); smaller ones in one request, which GCS verifies against the crc32c sent with it.
RESUMABLE_THRESHOLD = 8 * 2**20
RESUMABLE_CHUNK = 8 * 2**20  # a multiple of 256 KiB, as the resumable protocol requires
HTTP_TIMEOUT = 30.0
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class ObjectNotFound(Exception):
    """The object (or its bucket) does not exist."""


class AccessDenied(Exception):
    """The credentials may not read or write the object."""


@dataclass(frozen=True)
class ObjectInfo:
    """What was written: size and the checksums GCS reports (base64 of the big-endian digest)."""

    uri: str
    size: int
    md5: str
    crc32c: str


class Checksums:
    """md5 and crc32c computed in one pass, in the encoding GCS uses."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._crc32c = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._md5.update(chunk)
        self._crc32c.update(chunk)  # type: ignore[no-untyped-call]
        self.size += len(chunk)

    @property
    def md5(self) -> str:
        return base64.b64encode(self._md5.digest()).decode()

    @property
    def crc32c(self) -> str:
        digest: bytes = self._crc32c.digest()  # type: ignore[no-untyped-call]
        return base64.b64encode(digest).decode()

    def info(self, uri: str) -> ObjectInfo:
        return ObjectInfo(uri=uri, size=self.size, md5=self.md5, crc32c=self.crc32c)

    @classmethod
    def of_file(cls, path: Path) -> Checksums:
        sums = cls()
        with path.open("rb") as f:
            while chunk := f.read(COPY_CHUNK):
                sums.update(chunk)
        return sums


def join(base: str, *parts: str) -> str:
    """Join URI path segments with single slashes: join("gs://b/p/", "a", "b.png")."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def scheme_of(uri: str) -> str:
    scheme = urllib.parse.urlsplit(uri).scheme
    return scheme.lower() if scheme else ""


def local_path(uri: str) -> Path:
    """The path of a file:// URI (or a plain absolute path)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("", "file"):
        raise ValueError(f"{uri} is not a local file URI")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"{uri}: file URIs on another host ({parts.netloc}) are not supported")
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"{uri} is not an absolute file URI (file:///path)")
    return Path(path)


def file_uri(path: Path) -> str:
    return "file://" + urllib.parse.quote(str(path.resolve()))


def is_connection_failure(err: BaseException) -> bool:
    """A failure to reach the server at all (DNS, refused, unreachable), as opposed to an answer.

    For an input the user named, this after retries means the URL is wrong, not that the
    service is slow.
    """
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, socket.gaierror | ConnectionRefusedError):
            return True
        if isinstance(cause, urllib.error.URLError) and isinstance(cause.reason, OSError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class CancellableReader:
    """A file whose every read first checks for cancellation: a long upload stops at the next
    chunk, and the unfinished upload session never becomes an object."""

    def __init__(self, file: IO[bytes], cancellation: Cancellation) -> None:
        self._file = file
        self._cancellation = cancellation

    def read(self, size: int = -1) -> bytes:
        self._cancellation.check()
        return self._file.read(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class StorageBackend(Protocol):
    """One URI scheme's operations (`LocalFiles`, `GoogleCloudStorage`, `Web`); `Storage` adds
    dispatch and retries. Not to be confused with `backends.RenderBackend`, which draws frames."""

    def read_bytes(self, uri: str, max_bytes: int | None) -> bytes: ...

    def download(self, uri: str, path: Path) -> None: ...

    def upload(self, path: Path, uri: str, content_type: str | None) -> ObjectInfo: ...

    def info(self, uri: str) -> ObjectInfo: ...

    def exists(self, uri: str) -> bool: ...

    def delete(self, uri: str) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def is_transient(self, err: BaseException) -> bool: ...


class Storage:
    """All storage operations of a stage, by URI, with retries and atomic writes."""

    def __init__(self, cancellation: Cancellation | None = None,
                 policy: RetryPolicy = DEFAULT_POLICY,
                 backends: dict[str, StorageBackend] | None = None) -> None:
        self.cancellation = cancellation or Cancellation()
        self.policy = policy
        self._backends: dict[str, StorageBackend] = dict(backends or {})

    def backend(self, uri: str) -> StorageBackend:
        scheme = scheme_of(uri)
        if scheme == "":
            scheme = "file"
        if scheme not in self._backends:
            if scheme == "file":
                self._backends[scheme] = LocalFiles(self.cancellation)
            elif scheme == "gs":
                self._backends[scheme] = GoogleCloudStorage(self.cancellation)
            elif scheme in ("http", "https"):
                self._backends[scheme] = Web()
            else:
                raise ValueError(f"{uri}: unsupported scheme {scheme!r} "
                                 "(file://, gs://, http:// or https://)")
        return self._backends[scheme]

    def _retry(self, uri: str, what: str, action: Callable[[StorageBackend], T]) -> T:
        backend = self.backend(uri)
        return with_retries(lambda: action(backend), f"{what} {uri}", backend.is_transient,
                            self.policy, self.cancellation)

    def read_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        return self._retry(uri, "reading", lambda b: b.read_bytes(uri, max_bytes))

    def download(self, uri: str, path: Path) -> None:
        """Copy the object to `path`, atomically (a retried download never leaves half a file)."""
        self._retry(uri, "downloading", lambda b: b.download(uri, path))

    def upload(self, path: Path, uri: str, content_type: str | None = None) -> ObjectInfo:
        return self._retry(uri, "uploading to", lambda b: b.upload(path, uri, content_type))

    def write_bytes(self, uri: str, data: bytes, workspace: Path,
                    content_type: str | None = None) -> ObjectInfo:
        """Write `data` to `uri` (through a file in `workspace`, so one upload path exists)."""
        staged = workspace / f".write-{uuid.uuid4().hex}"
        staged.write_bytes(data)
        try:
            return self.upload(staged, uri, content_type)
        finally:
            staged.unlink(missing_ok=True)

    def info(self, uri: str) -> ObjectInfo:
        return self._retry(uri, "inspecting", lambda b: b.info(uri))

    def exists(self, uri: str) -> bool:
        return self._retry(uri, "checking", lambda b: b.exists(uri))

    def delete(self, uri: str) -> None:
        self._retry(uri, "deleting", lambda b: b.delete(uri))

    def list(self, prefix: str) -> list[str]:
        """URIs of the objects under `prefix` (a folder URI), sorted."""
        return self._retry(prefix, "listing", lambda b: b.list(prefix))


# --- file://


class LocalFiles:
    """file:// URIs: temp-then-rename writes, fsync before the rename so a crash keeps either
    the old or the new file."""

    def __init__(self, cancellation: Cancellation) -> None:
        self.cancellation = cancellation

    def is_transient(self, err: BaseException) -> bool:
        # Local disks do not get better by waiting; NFS and FUSE mounts sometimes do.
        return isinstance(err, TimeoutError | InterruptedError | BlockingIOError)

    @staticmethod
    def _path(uri: str) -> Path:
        return local_path(uri)

    def read_bytes(self, uri: str, max_bytes: int | None) -> bytes:
        path = self._path(uri)
        try:
            with path.open("rb") as f:
                data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        except FileNotFoundError:
            raise ObjectNotFound(f"{uri} does not exist") from None
        except IsADirectoryError:
            raise ObjectNotFound(f"{uri} is a directory") from None
        except PermissionError:
            raise AccessDenied(f"{uri}: permission denied") from None
        if max_bytes is not None and len(data) > max_bytes:
            raise ValueError(f"{uri} is larger than {max_bytes} bytes")
        return data

    @contextlib.contextmanager
    def _atomic(self, target: Path) -> Iterator[IO[bytes]]:
        """A file that appears under `target` only if the block completes."""
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
        with self.cancellation.cleanup(lambda: temp.unlink(missing_ok=True)):
            try:
                with temp.open("wb") as f:
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(temp, target)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
        with contextlib.suppress(OSError):
            # The rename itself is durable only once the directory is flushed.
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _copy(self, source: IO[bytes], target: Path, uri: str) -> ObjectInfo:
        sums = Checksums()
        reader = CancellableReader(source, self.cancellation)
        with self._atomic(target) as out:
            while chunk := reader.read(COPY_CHUNK):
                sums.update(chunk)
                out.write(chunk)
        return sums.info(uri)

    def download(self, uri: str, path: Path) -> None:
        source = self._path(uri)
        try:
            f = source.open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"{uri} does not exist") from None
        except PermissionError:
            raise AccessDenied(f"{uri}: permission denied") from None
        with f:
            self._copy(f, path, uri)

    def upload(self, path: Path, uri: str, content_type: str | None) -> ObjectInfo:
        target = self._path(uri)
        with path.open("rb") as f:
            try:
                return self._copy(f, target, uri)
            except PermissionError:
                raise AccessDenied(f"{uri}: permission denied") from None

    def info(self, uri: str) -> ObjectInfo:
        path = self._path(uri)
        if not path.is_file():
            raise ObjectNotFound(f"{uri} does not exist")
        return Checksums.of_file(path).info(uri)

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def delete(self, uri: str) -> None:
        self._path(uri).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        root = self._path(prefix)
        if not root.is_dir():
            return []
        return sorted(file_uri(p) for p in root.rglob("*")
                      if p.is_file() and ".tmp-" not in p.name)


# --- gs://


def _split_gs(uri: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "gs" or not parts.netloc:
        raise ValueError(f"{uri} is not gs://bucket/object")
    return parts.netloc, parts.path.lstrip("/")


class GoogleCloudStorage:
    """gs:// URIs through google-cloud-storage (imported on first use: file:// runs skip it)."""

    def __init__(self, cancellation: Cancellation, client: Client | None = None,
                 resumable_threshold: int = RESUMABLE_THRESHOLD,
                 chunk_size: int = RESUMABLE_CHUNK, timeout: float = 60.0,
                 retry_timeout: float = 30.0) -> None:
        self.cancellation = cancellation
        self._client = client
        self.resumable_threshold = resumable_threshold
        self.chunk_size = chunk_size
        self.timeout = timeout
        # The client's own retries, bounded: they resume a resumable upload where it broke off
        # (the outer `with_retries` would start it again). Its default gives up only after 120 s.
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.retry = DEFAULT_RETRY.with_timeout(retry_timeout) if retry_timeout > 0 else None

    @property
    def client(self) -> Client:
        if self._client is None:
            from google.cloud import storage

            # project=None: reading and writing objects needs no project, and clusters often
            # have none configured. The client honours STORAGE_EMULATOR_HOST by itself.
            self._client = storage.Client(project=None)
        return self._client

    def _blob(self, uri: str) -> Blob:
        bucket, name = _split_gs(uri)
        if not name:
            raise ValueError(f"{uri} names a bucket, not an object")
        return self.client.bucket(bucket).blob(name)

    @contextlib.contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        from google.api_core import exceptions as api

        try:
            yield
        except api.NotFound:
            raise ObjectNotFound(f"{uri} does not exist") from None
        except (api.Forbidden, api.Unauthorized) as err:
            raise AccessDenied(f"{uri}: {err.message}") from None

    def is_transient(self, err: BaseException) -> bool:
        import requests
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth
        from google.cloud.storage import exceptions as media

        if isinstance(err, api.GoogleAPICallError):
            return err.code in _TRANSIENT_STATUS
        if isinstance(err, media.InvalidResponse):
            return err.response.status_code in _TRANSIENT_STATUS
        # A checksum mismatch means the bytes were damaged in flight: sending them again helps.
        return isinstance(err, ConnectionError | TimeoutError | requests.ConnectionError
                          | requests.Timeout | requests.exceptions.ChunkedEncodingError
                          | http.client.HTTPException | auth.TransportError
                          | media.DataCorruption)

    def read_bytes(self, uri: str, max_bytes: int | None) -> bytes:
        blob = self._blob(uri)
        with self._errors(uri):
            if max_bytes is not None:
                blob.reload(timeout=self.timeout, retry=self.retry)
                if (blob.size or 0) > max_bytes:
                    raise ValueError(f"{uri} is larger than {max_bytes} bytes")
            data: bytes = blob.download_as_bytes(checksum="crc32c", timeout=self.timeout,
                                                 retry=self.retry)
            return data

    def download(self, uri: str, path: Path) -> None:
        blob = self._blob(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
        with self.cancellation.cleanup(lambda: temp.unlink(missing_ok=True)):
            try:
                with self._errors(uri):
                    # The client checks the crc32c GCS stores against the bytes received.
                    blob.download_to_filename(str(temp), checksum="crc32c",
                                              timeout=self.timeout, retry=self.retry)
                os.replace(temp, path)
            finally:
                temp.unlink(missing_ok=True)

    def upload(self, path: Path, uri: str, content_type: str | None) -> ObjectInfo:
        sums = Checksums.of_file(path)
        blob = self._blob(uri)
        blob.chunk_size = self.chunk_size
        resumable = sums.size > self.resumable_threshold
        with self._errors(uri), path.open("rb") as f:
            blob.upload_from_file(
                CancellableReader(f, self.cancellation),
                # No size: the client streams a resumable session chunk by chunk.
                size=None if resumable else sums.size,
                content_type=content_type or "application/octet-stream",
                # Sent with the data, so GCS verifies it before the object exists.
                checksum="crc32c",
                crc32c_checksum_value=sums.crc32c,
                timeout=self.timeout,
                retry=self.retry,
            )
        if blob.crc32c != sums.crc32c or (blob.size is not None and blob.size != sums.size):
            # Should be impossible (the server checked); never keep an object we cannot vouch for.
            with contextlib.suppress(Exception):
                blob.delete(timeout=self.timeout, retry=self.retry)
            from google.cloud.storage import exceptions as media

            raise media.DataCorruption(None, f"{uri}: stored crc32c {blob.crc32c} "
                                       f"differs from the file's {sums.crc32c}")
        return ObjectInfo(uri=uri, size=sums.size, md5=blob.md5_hash or sums.md5,
                          crc32c=sums.crc32c)

    def info(self, uri: str) -> ObjectInfo:
        blob = self._blob(uri)
        with self._errors(uri):
            blob.reload(timeout=self.timeout, retry=self.retry)
        return ObjectInfo(uri=uri, size=blob.size or 0, md5=blob.md5_hash or "",
                          crc32c=blob.crc32c or "")

    def exists(self, uri: str) -> bool:
        with self._errors(uri):
            return bool(self._blob(uri).exists(timeout=self.timeout, retry=self.retry))

    def delete(self, uri: str) -> None:
        from google.api_core import exceptions as api

        with contextlib.suppress(api.NotFound), self._errors(uri):
            self._blob(uri).delete(timeout=self.timeout, retry=self.retry)

    def list(self, prefix: str) -> list[str]:
        bucket, name = _split_gs(prefix)
        name = name.rstrip("/") + "/" if name else ""
        with self._errors(prefix):
            blobs = self.client.list_blobs(bucket, prefix=name, timeout=self.timeout,
                                           retry=self.retry)
            return sorted(f"gs://{bucket}/{b.name}" for b in blobs)


# --- http(s):// (inputs only)


class HttpStatus(Exception):
    """An http(s) answer that is neither the object nor a redirect."""

    def __init__(self, uri: str, code: int) -> None:
        super().__init__(f"{uri}: HTTP {code}")
        self.code = code


class Web:
    """Read-only http(s) for input images and audio, within the administrator's fetch policy
    (fetch_policy.py): listed hosts, public addresses, at most `max_bytes` in `timeout_seconds`.
    A refused URL and a server that refuses the connection both fail as `Unreachable`, and
    neither is retried."""

    def __init__(self, policy: FetchPolicy | None = None,
                 resolve: Resolver = system_resolver) -> None:
        self.policy = policy or FetchPolicy.from_json(os.environ.get(FETCH_POLICY_ENV))
        self.resolve = resolve

    def is_transient(self, err: BaseException) -> bool:
        if isinstance(err, HttpStatus):
            return err.code in _TRANSIENT_STATUS
        return isinstance(err, TimeoutError | http.client.HTTPException)

    @contextlib.contextmanager
    def _open(self, uri: str) -> Iterator[Any]:
        url = uri
        for _ in range(MAX_REDIRECTS + 1):
            t = target(url, self.policy, self.resolve)
            conn = pinned(t.scheme, t.address, t.host, t.port,
                          min(HTTP_TIMEOUT, self.policy.timeout_seconds))
            try:
                try:
                    conn.request("GET", t.path, headers={"User-Agent": "videojob-worker"})
                    response = conn.getresponse()
                except TimeoutError:
                    raise
                except OSError:
                    raise Unreachable(uri) from None
                location = response.getheader("Location")
                if response.status in (301, 302, 303, 307, 308) and location:
                    url = urllib.parse.urljoin(url, location)  # checked again, above
                    continue
                if response.status in (404, 410):
                    raise ObjectNotFound(f"{uri}: HTTP {response.status}")
                if response.status in (401, 403):
                    raise AccessDenied(f"{uri}: HTTP {response.status}")
                if response.status != 200:
                    raise HttpStatus(uri, response.status)
                yield response
                return
            finally:
                conn.close()
        raise Unreachable(uri)  # too many redirects

    def _read(self, uri: str, response: Any, limit: int, out: IO[bytes] | None) -> bytes:
        """The body, at most `limit` bytes, within the policy's time."""
        deadline = time.monotonic() + self.policy.timeout_seconds
        chunks, size = [], 0
        while chunk := response.read(min(COPY_CHUNK, limit + 1 - size) or 1):
            size += len(chunk)
            if size > limit:
                raise ValueError(f"is larger than {limit} bytes")
            if time.monotonic() > deadline:
                raise ValueError(f"took longer than {self.policy.timeout_seconds:g} s")
            if out is None:
                chunks.append(chunk)
            else:
                out.write(chunk)
        return b"".join(chunks)

    def read_bytes(self, uri: str, max_bytes: int | None) -> bytes:
        limit = min(max_bytes or self.policy.max_bytes, self.policy.max_bytes)
        with self._open(uri) as response:
            return self._read(uri, response, limit, None)

    def download(self, uri: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with self._open(uri) as response, temp.open("wb") as out:
                self._read(uri, response, self.policy.max_bytes, out)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)

    def upload(self, path: Path, uri: str, content_type: str | None) -> ObjectInfo:
        raise ValueError(f"{uri}: http(s) URIs are read-only")

    def info(self, uri: str) -> ObjectInfo:
        raise ValueError(f"{uri}: http(s) URIs have no object metadata")

    def exists(self, uri: str) -> bool:
        try:
            with self._open(uri):
                return True
        except ObjectNotFound:
            return False

    def delete(self, uri: str) -> None:
        raise ValueError(f"{uri}: http(s) URIs are read-only")

    def list(self, prefix: str) -> list[str]:
        raise ValueError(f"{prefix}: http(s) URIs cannot be listed")
