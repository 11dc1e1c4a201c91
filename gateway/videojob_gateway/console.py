"""The web console: static files (console/, no build step, nothing from another origin) served
at `/`, with headers that keep a page showing other users' strings from running any of them.

The page holds no secret of the gateway's and gets no right from it: it asks the API, with the
caller's own token or key (kept in the tab's sessionStorage), as any other client does.

Content-Security-Policy: scripts and styles from this origin only, no inline script or style,
no `eval`; requests, media and images to this origin only; no plugins, no forms posted
anywhere, no `<base>`; never framed (`frame-ancestors 'none'`, and X-Frame-Options for
browsers without CSP 3). `Referrer-Policy: no-referrer`, so a download link in a `<video src>`
is never sent on to anyone.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from . import problems

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "media-src 'self'",
    "connect-src 'self'",
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])

# The files there are, and their media types: nothing else is served (no path from a request
# reaches the file system).
ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "sse.js": "text/javascript; charset=utf-8",
    "render.js": "text/javascript; charset=utf-8",
}
INDEX = "index.html"


def security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Cross-Origin-Opener-Policy": "same-origin",
            # A new gateway's console is picked up at once; the files are small.
            "Cache-Control": "no-cache"}


def asset(name: str) -> bytes:
    return resources.files("videojob_gateway").joinpath("console", name).read_bytes()


router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> Response:
    return Response(asset(INDEX), media_type="text/html; charset=utf-8",
                    headers=security_headers())


@router.get("/console/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise problems.not_found(f"no console file {name}")
    return Response(asset(name), media_type=media_type, headers=security_headers())
