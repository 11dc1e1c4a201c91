"""The gateway's settings: one object, built once in `__main__` from the command line and the
`VIDEOJOB_GATEWAY_*` environment (a flag wins), and handed to the app. Nothing reads the
environment at import time."""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    field_validator,
    model_validator,
)

from .auth import Mode
from .layout import StorageRoot

ENV_PREFIX = "VIDEOJOB_GATEWAY_"
# The archive's DSN: the same variable the operator reads (from the same Secret, in the chart).
# Never a flag: a command line is visible to every process on the node.
ARCHIVE_DSN_ENV = "VIDEOJOB_ARCHIVE_DSN"
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # None: in-cluster (the pod's ServiceAccount).
    kubeconfig: Path | None = None
    context: str | None = None
    auth_modes: frozenset[Mode] = frozenset({"token"})
    # Where the API-key Secrets are (keys.py); needed with key mode.
    key_namespace: str | None = None
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    token_cache_seconds: float = Field(10.0, ge=0)
    access_cache_seconds: float = Field(5.0, ge=0)
    auth_cache_entries: int = Field(10_000, ge=1)
    list_default: int = Field(50, ge=1)
    list_max: int = Field(500, ge=1)
    keepalive_seconds: float = Field(15.0, gt=0)
    # Per credential (ratelimit.py); 0 turns it off.
    rate_limit: float = Field(20.0, ge=0)
    rate_burst: int = Field(40, ge=1)
    # Signs continue tokens (pages.py). Random per process unless given: replicas behind one
    # Service must share it, or a page's token only works on the replica that made it.
    continue_key: SecretBytes = Field(default_factory=lambda: SecretBytes(secrets.token_bytes(32)))
    # Signs download links (download_links.py): random per process unless given, like
    # continue_key; replicas behind one Service must share it (a Secret, --download-link-key-file).
    download_link_key: SecretBytes = Field(
        default_factory=lambda: SecretBytes(secrets.token_bytes(32)))
    download_link_seconds: int = Field(300, ge=1, le=300)
    api_timeout_seconds: float = Field(10.0, gt=0)
    watch_seconds: int = Field(290, ge=10)  # one watch request's length (the server ends it)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = "info"
    # The operator's storage_root: uploads go under <root>/<ns>/_uploads/, downloads are served
    # from <root>/<ns>/ (files.py). None: those routes answer 501.
    storage_root: str | None = None
    # Uploads (uploads.py). The worker reads images up to 64 MiB and audio up to 256 MiB
    # (videojob_worker.inputs): more here would be refused there.
    upload_max_files: int = Field(64, ge=1)
    upload_max_image_bytes: int = Field(20 * 2**20, ge=1, le=64 * 2**20)
    upload_max_audio_bytes: int = Field(200 * 2**20, ge=1, le=256 * 2**20)
    upload_max_total_bytes: int = Field(512 * 2**20, ge=1024)

    @field_validator("storage_root")
    @classmethod
    def _storage_root(cls, value: str | None) -> str | None:
        return StorageRoot.parse(value).uri if value else None
    # Inbound webhooks (triggers.py): off, the gateway neither watches VideoJobTriggers nor
    # needs their CRD (a cluster whose CRDs were not upgraded with the chart).
    triggers: bool = True
    # A Standard Webhooks delivery timestamped further than this from now is refused (401).
    trigger_timestamp_tolerance_seconds: float = Field(300.0, gt=0)
    # Deliveries remembered per process for replay detection (the VideoJob's name is the rest).
    trigger_replay_entries: int = Field(100_000, ge=1)
    # How long a trigger's signing secret (or the failure to read it) is kept.
    trigger_key_cache_seconds: float = Field(10.0, ge=0)

    # The history routes (history.py): the archive's PostgreSQL; None: they answer 503.
    archive_dsn: SecretStr | None = None
    # Connections to it, and threads that run its queries.
    archive_pool_size: int = Field(4, ge=1, le=64)
    # How long a history request waits for a connection before its 503.
    archive_timeout_seconds: float = Field(5.0, gt=0)
    # The longest a history query may run in PostgreSQL (a session statement_timeout).
    archive_statement_timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("download_link_key")
    @classmethod
    def _download_link_key(cls, value: SecretBytes) -> SecretBytes:
        if len(value.get_secret_value()) < 16:
            raise ValueError("the download-link key must be at least 16 bytes")
        return value

    @model_validator(mode="after")
    def consistent(self) -> Settings:
        if "key" in self.auth_modes and not self.key_namespace:
            raise ValueError("key mode needs --key-namespace (where the API-key Secrets are)")
        if self.list_default > self.list_max:
            raise ValueError("--list-default must not be over --list-max")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both --tls-cert and --tls-key, or neither")
        return self


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="videojob-gateway",
        description="The VideoJob HTTP API (docs/http-api.md). Each flag can also be given as "
                    f"{ENV_PREFIX}<FLAG> (e.g. {ENV_PREFIX}AUTH_MODES=token,key).")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a pod)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument("--kubeconfig", help="the gateway's own identity (default: $KUBECONFIG, "
                   "in-cluster in a pod, else ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--auth-modes", help="token, key or token,key (default token)")
    p.add_argument("--key-namespace", help="namespace of the API-key Secrets (default: the "
                   "gateway's own, in a pod)")
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 262144)")
    p.add_argument("--token-cache-seconds", type=float, help="TokenReview cache TTL (10)")
    p.add_argument("--access-cache-seconds", type=float,
                   help="SubjectAccessReview cache TTL (5)")
    p.add_argument("--auth-cache-entries", type=int, help="entries per auth cache (10000)")
    p.add_argument("--list-default", type=int, help="page size when none is asked (50)")
    p.add_argument("--list-max", type=int, help="largest page size (500)")
    p.add_argument("--keepalive-seconds", type=float, help="event-stream keep-alives (15)")
    p.add_argument("--rate-limit", type=float,
                   help="requests a second per credential, on average (20; 0: no limit)")
    p.add_argument("--rate-burst", type=int, help="requests per credential at once (40)")
    p.add_argument("--continue-key-file", help="file with the key that signs continue tokens "
                   "(default: random per process)")
    p.add_argument("--download-link-key-file", help="file with the key that signs download "
                   "links (default: random per process)")
    p.add_argument("--download-link-seconds", type=int,
                   help="how long a download link works (300, the most)")
    p.add_argument("--api-timeout-seconds", type=float, help="API-server request timeout (10)")
    p.add_argument("--watch-seconds", type=int, help="length of one watch request (290)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="and this key")
    p.add_argument("--log-level", help="debug, info, warning, error (default info)")
    p.add_argument("--storage-root", help="the operator's storage_root (file:///path or "
                   "gs://bucket/prefix): enables uploads and downloads")
    p.add_argument("--upload-max-files", type=int, help="files in one upload (64)")
    p.add_argument("--upload-max-image-bytes", type=int, help="one image (20 MiB)")
    p.add_argument("--upload-max-audio-bytes", type=int, help="one audio file (200 MiB)")
    p.add_argument("--upload-max-total-bytes", type=int,
                   help="one upload's whole request body (512 MiB)")
    p.add_argument("--triggers", choices=["true", "false"],
                   help="serve VideoJobTriggers' webhooks (default true)")
    p.add_argument("--trigger-timestamp-tolerance-seconds", type=float,
                   help="Standard Webhooks timestamps accepted this far from now (300)")
    p.add_argument("--trigger-replay-entries", type=int,
                   help="deliveries remembered for replay detection (100000)")
    p.add_argument("--trigger-key-cache-seconds", type=float,
                   help="how long a trigger's signing secret is cached (10)")
    p.add_argument("--archive-pool-size", type=int,
                   help=f"connections to the archive (4); its DSN is ${ARCHIVE_DSN_ENV}, "
                        "never a flag")
    p.add_argument("--archive-timeout-seconds", type=float,
                   help="a history request's wait for an archive connection (5)")
    p.add_argument("--archive-statement-timeout-seconds", type=float,
                   help="the longest a history query may run (10)")
    return p


def load(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Settings from flags, then `VIDEOJOB_GATEWAY_*`, then defaults."""
    args = vars(parser().parse_args(list(argv)))
    values: dict[str, object] = {}
    for name, flag_value in args.items():
        value = flag_value if flag_value is not None else environ.get(ENV_PREFIX + name.upper())
        if value is not None and value != "":
            values[name] = value
    if "auth_modes" in values:
        values["auth_modes"] = frozenset(
            m.strip() for m in str(values["auth_modes"]).split(",") if m.strip())
    if "continue_key_file" in values:
        values["continue_key"] = Path(str(values.pop("continue_key_file"))).read_bytes().strip()
    if "download_link_key_file" in values:
        values["download_link_key"] = Path(
            str(values.pop("download_link_key_file"))).read_bytes().strip()
    if environ.get(ARCHIVE_DSN_ENV):
        values["archive_dsn"] = environ[ARCHIVE_DSN_ENV]
    values["kubeconfig"] = values.get("kubeconfig") or _kubeconfig(environ)
    if "key_namespace" not in values and IN_CLUSTER_NAMESPACE.exists():
        values["key_namespace"] = IN_CLUSTER_NAMESPACE.read_text().strip()
    return Settings.model_validate(values)


def _kubeconfig(environ: Mapping[str, str]) -> Path | None:
    if environ.get("KUBECONFIG"):
        return Path(environ["KUBECONFIG"].split(":")[0])
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    return Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config"
