"""`videojob-gateway`: serve the HTTP API; `videojob-gateway new-key`: make an API key and print
the Secret that gives it to a ServiceAccount (keys.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import yaml

from . import keys


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["new-key"]:
        return new_key(args[1:])
    return serve(args)


def serve(argv: Sequence[str]) -> int:
    import uvicorn

    from .app import create_app
    from .config import load
    from .kube import load_connection

    settings = load(argv, os.environ)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: the cache's watches and the reviews, many a second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(settings, load_connection(settings.kubeconfig, settings.context))
    # uvloop and httptools (the gateway's dependencies), named so that a missing one fails at
    # start instead of the server quietly running on asyncio and h11 at 1.3x the CPU a request.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                loop="uvloop", http="httptools",
                ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
                ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
                # Event streams are long; a rollout should not wait for them all to end.
                timeout_graceful_shutdown=5, proxy_headers=False)
    return 0


def new_key(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="videojob-gateway new-key",
        description="Make an API key acting as SERVICE_ACCOUNT in NAMESPACE. Prints the key "
                    "on stderr (shown once: keep it) and its Secret on stdout, for "
                    "`kubectl apply -f -`.")
    p.add_argument("--namespace", required=True, help="the one namespace the key acts in")
    p.add_argument("--service-account", required=True,
                   help="the ServiceAccount of that namespace whose RBAC applies")
    p.add_argument("--key-namespace", required=True,
                   help="the gateway's --key-namespace, where the Secret goes")
    p.add_argument("--name", help="the Secret's name (default apikey-<namespace>-<account>)")
    args = p.parse_args(list(argv))
    key = keys.new_key()
    name = args.name or f"apikey-{args.namespace}-{args.service_account}"[:253]
    try:
        secret = keys.secret_manifest(name, args.key_namespace, args.namespace,
                                      args.service_account, key)
    except keys.InvalidKeySecret as e:
        p.error(str(e))
    sys.stderr.write(f"API key (shown once): {key}\n")
    sys.stdout.write(yaml.safe_dump(secret, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
