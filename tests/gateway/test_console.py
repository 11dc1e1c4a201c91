"""The console's static files and headers (console.py), and the pure part of its page: the
event-stream parser (console/sse.js), run in Node when there is one (the browser tests run it
in Chromium too)."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from videojob_gateway import console, problems

CONSOLE = Path(str(resources.files("videojob_gateway").joinpath("console")))


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(console.router)
    return TestClient(app)


def test_the_page_and_its_files_carry_a_strict_policy(client: TestClient) -> None:
    for path in ["/", *(f"/console/{name}" for name in console.ASSETS)]:
        resp = client.get(path)
        assert resp.status_code == 200, path
        csp = resp.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["referrer-policy"] == "no-referrer"
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.get("/console/console.js").headers["content-type"].startswith(
        "text/javascript")


@pytest.mark.parametrize("path", ["/console/index.html", "/console/../app.py",
                                  "/console/%2e%2e%2fapp.py", "/console/rbac.yaml",
                                  "/console/nope.js"])
def test_only_the_listed_files_are_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_every_file_of_the_console_is_listed_and_nothing_is_inline() -> None:
    files = {p.name for p in CONSOLE.iterdir()}
    assert files == {*console.ASSETS, console.INDEX}
    html = (CONSOLE / console.INDEX).read_text()
    # The policy would block them anyway; a page that needs them would be broken.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)
    assert "http://" not in html and "https://" not in html  # nothing from another origin
    for name in console.ASSETS:
        text = (CONSOLE / name).read_text()
        assert "innerHTML" not in text and "outerHTML" not in text, name
        assert "insertAdjacentHTML" not in text and "document.write" not in text, name
        assert "eval(" not in text and "new Function" not in text, name


def test_every_form_control_has_a_label() -> None:
    html = (CONSOLE / console.INDEX).read_text()
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if 'type="radio"' in tag:
            continue  # wrapped in their <label>
        ident = re.search(r'id="([^"]+)"', tag)
        assert ident and ident.group(1) in labelled, tag


SSE_TEST = r"""
import { SseParser } from "%s";
import assert from "node:assert/strict";

function all(chunks) {
  const p = new SseParser();
  const out = [];
  for (const c of chunks) out.push(...p.feed(c));
  return [out, p];
}
const stream = "retry: 3000\n\nid: 5.aa\nevent: status\ndata: {\"a\":1}\n\n: keep-alive\n\n" +
  "id: 6.bb\r\nevent: status\r\ndata: line one\r\ndata: line two\r\n\r\n" +
  "data:no space\rid: 7.cc\r\r";
const [whole, p] = all([stream]);
assert.deepEqual(whole, [
  { type: "status", data: "{\"a\":1}", id: "5.aa" },
  { type: "status", data: "line one\nline two", id: "6.bb" },
  { type: "message", data: "no space", id: "7.cc" }]);
assert.equal(p.retry, 3000);
assert.equal(p.lastEventId, "7.cc");
// The same bytes cut anywhere, a CR LF split between two chunks included.
for (let i = 0; i <= stream.length; i++) {
  assert.deepEqual(all([stream.slice(0, i), stream.slice(i)])[0], whole, `cut at ${i}`);
}
assert.deepEqual(all([...stream])[0], whole, "a character at a time");
// An id with NUL is ignored; an event without data is not dispatched; bad retry ignored.
const [odd, q] = all(["id: 1.x\n\nid: a\0b\nretry: 12x\ndata: d\n\n"]);
assert.deepEqual(odd, [{ type: "message", data: "d", id: "1.x" }]);
assert.equal(q.retry, null);
console.log("ok");
"""


def test_the_event_stream_parser(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node here: the parser is still run in Chromium (test_console_e2e.py)")
    script = tmp_path / "sse_test.mjs"
    script.write_text(SSE_TEST % (CONSOLE / "sse.js").as_uri())
    out = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
