"""The console's static files and headers (console.py), and the pure part of its page: the
event-stream parser (console/sse.js), run in Node when there is one (the browser tests run it
in Chromium too)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from fastapi.responses import Response

from videojob_gateway import console, problems

CONSOLE = Path(str(resources.files("videojob_gateway").joinpath("console")))


def served(path: str) -> Response:
    """What the console's routes answer for a path (they are plain async functions)."""
    if path == "/":
        return asyncio.run(console.index())
    return asyncio.run(console.static(path.removeprefix("/console/")))


def test_the_page_and_its_files_carry_a_strict_policy() -> None:
    for path in ["/", *(f"/console/{name}" for name in console.ASSETS)]:
        resp = served(path)
        assert resp.status_code == 200, path
        csp = resp.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["referrer-policy"] == "no-referrer"
    assert served("/").headers["content-type"].startswith("text/html")
    assert served("/console/console.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/console/index.html", "/console/../app.py",
                                  "/console/%2e%2e%2fapp.py", "/console/rbac.yaml",
                                  "/console/nope.js", "/console/"])
def test_only_the_listed_files_are_served(path: str) -> None:
    with pytest.raises(problems.Problem) as e:
        served(path)
    assert e.value.status == 404


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


FOLLOW_TEST = r"""
import http from "node:http";
import assert from "node:assert/strict";
import { follow } from "%s";

// A stream that drops twice, then says there is nothing more (204); then one that refuses.
const asked = [];
let answers = [
  (res) => { res.writeHead(200, { "content-type": "text/event-stream" });
             res.end("retry: 10\n\nid: 1.a\nevent: status\ndata: {\"p\":1}\n\n"); },
  (res) => { res.writeHead(200, { "content-type": "text/event-stream" });
             res.end(": keep-alive\n\nid: 2.b\nevent: status\ndata: {\"p\":2}\n\n"); },
  (res) => { res.writeHead(204); res.end(); },
];
const server = http.createServer((req, res) => {
  asked.push([req.headers.authorization, req.headers["last-event-id"] ?? null]);
  answers.shift()(res);
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const url = `http://127.0.0.1:${server.address().port}/events`;
const headers = { Authorization: "Bearer t0k" };
const events = [];
await follow(url, { headers, onEvent: (e) => events.push(e),
                    signal: new AbortController().signal });
assert.deepEqual(events.map((e) => [e.type, e.data, e.id]),
                 [["status", "{\"p\":1}", "1.a"], ["status", "{\"p\":2}", "2.b"]]);
assert.deepEqual(asked, [["Bearer t0k", null], ["Bearer t0k", "1.a"], ["Bearer t0k", "2.b"]]);

// A refusal ends it at once (no retry), with the problem document; so does a final event.
asked.length = 0;
answers = [
  (res) => { res.writeHead(403, { "content-type": "application/problem+json" });
             res.end("{\"status\":403,\"detail\":\"no\"}"); },
];
const errors = [];
await follow(url, { headers, onEvent: () => {}, onError: (s, p) => errors.push([s, p.detail]),
                    signal: new AbortController().signal });
assert.deepEqual(errors, [[403, "no"]]);
assert.equal(asked.length, 1);
answers = [
  (res) => { res.writeHead(200, { "content-type": "text/event-stream" });
             res.write("event: deleted\ndata: {\"deleted\":true}\n\n"); },  // left open
];
const last = [];
await follow(url, { headers, onEvent: (e) => last.push(e.type), final: ["deleted"],
                    signal: new AbortController().signal });
assert.deepEqual(last, ["deleted"]);
server.closeAllConnections();
server.close();
console.log("ok");
"""


def test_following_a_stream_resumes_with_the_last_event_id(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node here: the console's stream is still followed in Chromium "
                    "(test_console_e2e.py)")
    script = tmp_path / "follow_test.mjs"
    script.write_text(FOLLOW_TEST % (CONSOLE / "sse.js").as_uri())
    out = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
