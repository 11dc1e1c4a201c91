"""`download NAME [-o PATH]`: fetch the finished video from where the operator published it.

The video's location is `status.outputURI`, which only a Succeeded VideoJob has; for any other
phase the command refuses and says what the VideoJob is doing instead.

- `file://` — copied (the storage a local cluster shares with this machine);
- `gs://` — the google-cloud-storage client, imported only here so the plugin runs without it
  for everything else; credentials are found the standard way, and `STORAGE_EMULATOR_HOST`
  points it at an emulator, as it does the worker;
- `http://`, `https://` — urllib (e.g. a signed URL or a bucket served over HTTP).

The bytes go to a temporary file next to the destination and are checked against what publish
recorded in `status.output` — the size, and the MD5 (base64 of the digest, as GCS reports it)
when present — before they are renamed over the destination. A failed or corrupted download
therefore never leaves a file under the name asked for.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from videojob_common.pipeline import Obj, Phase

from . import render, videojobs
from .cluster import Target
from .errors import CommandError
from .resource import VideoJobView

CHUNK = 1 << 20
HTTP_TIMEOUT = 60.0


def md5_base64(path: Path) -> str:
    """The MD5 of a file's content, base64 of the digest (GCS's `md5Hash` encoding)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def verify(path: Path, size: int | None, md5: str | None, uri: str) -> None:
    """Refuses a download whose size or MD5 differs from what publish recorded."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise CommandError(f"{uri}: got {actual} bytes, but status.output.bytes is {size}; "
                           "the download is incomplete or the object changed")
    if md5:
        got = md5_base64(path)
        if got != md5:
            raise CommandError(f"{uri}: MD5 {got} does not match status.output.md5 {md5}; "
                               "the download is corrupted or the object changed")


def local_path(uri: str) -> Path:
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise CommandError(f"{uri}: file URIs on another host ({parts.netloc}) cannot be read")
    return Path(urllib.parse.unquote(parts.path))


def _copy_file(uri: str, dest: Path) -> None:
    source = local_path(uri)
    try:
        src = source.open("rb")
    except FileNotFoundError:
        raise CommandError(f"{uri}: no such file on this machine (is the storage root shared "
                           "with it?)") from None
    except OSError as e:
        raise CommandError(f"{uri}: {e.strerror or e}") from None
    with src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, CHUNK)


def _copy_http(uri: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(uri, timeout=HTTP_TIMEOUT) as response, \
                dest.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except urllib.error.HTTPError as e:
        raise CommandError(f"{uri}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise CommandError(f"{uri}: {reason}") from None


def _copy_gs(uri: str, dest: Path) -> None:
    try:
        from google.cloud import storage
    except ImportError:
        raise CommandError("downloading gs:// URIs needs the google-cloud-storage package "
                           "(pip install google-cloud-storage)") from None
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not bucket or not name:
        raise CommandError(f"{uri} does not name an object (gs://BUCKET/OBJECT)")
    try:
        # project=None: reading an object needs no project. The client honours
        # STORAGE_EMULATOR_HOST by itself.
        blob = storage.Client(project=None).bucket(bucket).blob(name)
        blob.download_to_filename(str(dest))
    except api.NotFound:
        raise CommandError(f"{uri} does not exist") from None
    except (api.Forbidden, api.Unauthorized) as e:
        raise CommandError(f"{uri}: access denied: {e.message}") from None
    except api.GoogleAPIError as e:
        raise CommandError(f"{uri}: {' '.join(str(e).split())}") from None
    except auth.GoogleAuthError as e:
        raise CommandError(f"{uri}: no usable Google credentials: {' '.join(str(e).split())}"
                           ) from None


def fetch(uri: str, dest: Path) -> None:
    """Copies the object at `uri` into the file `dest`."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme == "file":
        _copy_file(uri, dest)
    elif scheme == "gs":
        _copy_gs(uri, dest)
    elif scheme in ("http", "https"):
        _copy_http(uri, dest)
    else:
        raise CommandError(f"{uri}: cannot download {scheme or 'scheme-less'} URIs "
                           "(file://, gs://, http:// and https:// are supported)")


def default_destination(vj: Obj) -> Path:
    """NAME plus the output's extension (`.mp4` when it has none), in the current directory."""
    view = VideoJobView.of(vj)
    suffix = Path(urllib.parse.urlsplit(view.output_uri or "").path).suffix or ".mp4"
    return Path(f"{view.name}{suffix}")


@contextmanager
def _staging(dest: Path | None) -> Iterator[Path]:
    """A temporary name beside `dest` (in a private directory for stdout), removed unless the
    file was renamed to `dest`."""
    if dest is None:
        with tempfile.TemporaryDirectory(prefix="videojob-download-") as directory:
            yield Path(directory) / "output"
        return
    temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def checks(vj: Obj) -> str:
    """What `save` can check the download against, in words."""
    output = VideoJobView.of(vj).status.output
    if output and output.md5:
        return "size and MD5 checked" if output.bytes is not None else "MD5 checked"
    if output and output.bytes is not None:
        return "size checked; the status records no MD5"
    return "not checked: the status records no size or MD5"


def save(vj: Obj, dest: Path | None) -> int:
    """Fetches and checks the output of `vj` into the file `dest` (None: stdout); its size."""
    view = VideoJobView.of(vj)
    if view.phase != Phase.SUCCEEDED:
        raise CommandError(f"videojob {view.name} has no output to download: it is "
                           f"{render.state(vj)}; only a Succeeded VideoJob has one")
    uri = view.output_uri
    if not uri:
        raise CommandError(f"videojob {view.name} Succeeded but its status has no outputURI")
    output = view.status.output
    with _staging(dest) as temp:
        fetch(uri, temp)
        verify(temp, output.bytes if output else None, output.md5 if output else None, uri)
        size = temp.stat().st_size
        if dest is None:
            with temp.open("rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer, CHUNK)
            sys.stdout.buffer.flush()
        else:
            os.replace(temp, dest)
    return size


def destination(vj: Obj, output: str | None) -> Path | None:
    """Where `-o` says to write (None: stdout); a directory gets the default file name."""
    if output == "-":
        return None
    dest = Path(output) if output else default_destination(vj)
    if dest.is_dir():
        dest = dest / default_destination(vj).name
    if not dest.parent.is_dir():
        raise CommandError(f"{dest.parent}: no such directory")
    return dest


def run(target: Target, name: str, output: str | None) -> int:
    vj = videojobs.get(target, name)
    dest = destination(vj, output)
    size = save(vj, dest)
    if dest is not None:
        print(f"{render.name_line(vj)} downloaded {VideoJobView.of(vj).output_uri} to {dest} "
              f"({size} bytes, {checks(vj)})")
    return 0
