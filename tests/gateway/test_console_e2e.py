"""The web console in a real headless Chromium (Debian's chromium and chromium-driver, through
Selenium's WebDriver), against the local cluster: the gateway as its own process with the
conftest's identity and RBAC, and the operator running the real worker, so a VideoJob made
through the form runs, its bar moves, and its MP4 plays.

Every wait is on a condition with a deadline (WebDriverWait, wait_until). The browser reaches
127.0.0.1 only: its background services are off and any other address goes to a dead proxy.

With VIDEOJOB_CONSOLE_SCREENSHOTS=<folder>, the pages are saved there as PNGs (docs/console/
holds a set from such a run).
"""

from __future__ import annotations

import base64
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from videojob_gateway import download_links
from videojob_testkit import REPO
from videojob_testkit import operator_process as operators
from videojob_testkit.gateway_process import GatewayProcess, GatewayWorld
from videojob_testkit.kube import Cluster
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import RedisServer, free_port, wait_until
from videojob_testkit.worker import write_image, write_wav

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver "
                              "(hack/install-system-deps.sh installs them)"),
]

if CHROMIUM is not None and CHROMEDRIVER is not None:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import Select, WebDriverWait

GROUP, VERSION, PLURAL = "videojob.dev", "v1alpha1", "videojobs"
SHOTS = os.environ.get("VIDEOJOB_CONSOLE_SCREENSHOTS")
# Small enough to render in seconds on the node agent, long enough to watch the bar move.
SMALL = {"resolution": "320x180", "durationSeconds": 4, "fps": 12, "scenes": 2}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), dir=tmp_path_factory.mktemp("console-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def operator(cluster: Cluster, crds: None, redis: RedisServer) -> Iterator[Operator]:
    """The operator with the real worker (its pods are processes on this machine)."""
    operators.stop_all()  # one operator per cluster: the e2e suite's, if it ran, waits
    workdir = REPO / ".cluster" / "e2e" / f"console-{uuid.uuid4().hex[:8]}"
    op = Operator(cluster=cluster, workdir=workdir, redis_url=redis.url, overrides={
        "worker_image": "ghcr.io/videojob/worker:0.1.0", "worker_command": None})
    op.start()
    yield op
    op.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def link_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console-key") / "download-link-key"
    path.write_bytes(os.urandom(32).hex().encode())
    return path


@pytest.fixture(scope="module")
def gateway(world: GatewayWorld, operator: Operator, link_key: Path, cluster: Cluster
            ) -> Iterator[GatewayProcess]:
    """The conftest's gateway identity, serving the operator's storage root, and the writer
    allowed to read the Events of its namespace (so the detail page has some to show)."""
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "events-reader", "namespace": world.a},
         "rules": [{"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "events-reader", "namespace": world.a},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "events-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "writer", "namespace": world.a}]}]))
    gw = GatewayProcess(kubeconfig=world.gateway_kubeconfig,
                        log=operator.workdir.parent / f"{operator.workdir.name}-gateway.log",
                        args=["--auth-modes", "token,key", "--key-namespace", world.system,
                              "--storage-root", f"file://{operator.workdir / 'artifacts'}",
                              "--download-link-key-file", str(link_key),
                              "--rate-limit", "1000", "--rate-burst", "1000"])
    gw.start()
    yield gw
    gw.stop()
    log = gw.log.read_text()
    gw.log.unlink()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ["--headless=new", "--no-sandbox",  # root: no user namespace sandbox
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--autoplay-policy=no-user-gesture-required",
                # Nothing but 127.0.0.1: no background services, every other host to a proxy
                # that is not there (loopback bypasses proxies).
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--no-first-run",
                "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                "--metrics-recording-only", "--no-default-browser-check",
                "--disable-features=OptimizationHints,MediaRouter,Translate,"
                "AutofillServerCommunication,InterestFeedContentSuggestions",
                "--proxy-server=http://127.0.0.1:9"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, condition: Any, timeout: float, what: str,
         why: Callable[[], str] | None = None) -> Any:
    """`why`, if given, says more when the wait fails (read then, not before)."""
    # Stale: the page redrew what was found a moment ago; look again.
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=[NoSuchElementException,
                                                 StaleElementReferenceException]
                             ).until(condition, message=what)
    except TimeoutException as e:
        if why is None:
            raise
        raise TimeoutException(f"{what} ({why()})") from e


def shot(driver: WebDriver, name: str) -> None:
    """The whole page (not only the window), when screenshots are asked for."""
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400),
                 "scale": 1}})["data"]
    (Path(SHOTS) / f"{name}.png").write_bytes(base64.b64decode(png))


def sign_in(driver: WebDriver, gw: GatewayProcess, secret: str, mode: str = "token") -> None:
    driver.get(gw.url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(gw.url + "/#/")
    wait(driver, lambda d: d.find_element(By.ID, "secret").is_displayed(), 20, "the sign-in form")
    driver.find_element(By.CSS_SELECTOR, f"input[name=mode][value={mode}]").click()
    driver.find_element(By.ID, "secret").send_keys(secret)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait(driver, lambda d: d.find_element(By.ID, "list-view").is_displayed(), 20, "the list")


def vj_get(world: GatewayWorld, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = world.admin.get_namespaced_custom_object(
        GROUP, VERSION, world.a, PLURAL, name)
    return obj


def long_videojob(world: GatewayWorld, prefix: str) -> str:
    """Creates a two-minute VideoJob in namespace A (long enough to act on while it runs)."""
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    world.admin.create_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
        "metadata": {"name": name},
        "spec": {"prompt": "a long road", **SMALL, "durationSeconds": 120}})
    return name


def vj_phase(world: GatewayWorld, name: str) -> str:
    """For a failure's message: where the operator says the VideoJob is."""
    try:
        return str((vj_get(world, name).get("status") or {}).get("phase"))
    except client.ApiException as e:
        return f"not read ({e.status})"


# Holds the answer to the next suspend of the VideoJob named in the first argument until the
# element the second selects shows Suspended (from the stream), or for 30 s.
HOLD_SUSPEND_ANSWER = """
const [name, phase] = arguments, send = window.fetch;
window.fetch = async (url, init) => {
  const resp = await send(url, init);
  if (String(url).endsWith(`/videojobs/${name}/suspend`)) {
    window.fetch = send;
    const shown = () => document.querySelector(phase)?.dataset.phase === "Suspended";
    for (const end = Date.now() + 30000; !shown() && Date.now() < end;) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return resp;
};
"""


def row(driver: WebDriver, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f"li.job[data-name='{name}']")


def progress_of(element: WebElement) -> int:
    return int(element.get_attribute("aria-valuenow") or 0)


def test_sign_in_is_needed_and_a_bad_credential_is_refused(
        browser: WebDriver, gateway: GatewayProcess) -> None:
    browser.get(gateway.url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(gateway.url + "/#/new")
    wait(browser, lambda d: d.find_element(By.ID, "signin-view").is_displayed(), 20,
         "the sign-in form, whatever page was asked for")
    assert not browser.find_element(By.ID, "new-view").is_displayed()
    browser.find_element(By.ID, "secret").send_keys("not-a-token")
    browser.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    error = wait(browser, lambda d: d.find_element(By.ID, "signin-error").text, 20,
                 "the refusal")
    assert "401" in error
    assert browser.execute_script("return sessionStorage.length") == 0  # nothing kept


def test_submit_through_the_form_watch_the_bar_and_play_the_video(
        browser: WebDriver, gateway: GatewayProcess, world: GatewayWorld) -> None:
    sign_in(browser, gateway, world.tokens["writer"])
    browser.get(gateway.url + "/#/new")
    wait(browser, lambda d: d.find_element(By.ID, "new-view").is_displayed(), 20, "the form")
    Select(browser.find_element(By.ID, "new-namespace")).select_by_value(world.a)
    name = f"lighthouse-{uuid.uuid4().hex[:5]}"
    browser.find_element(By.ID, "new-name").send_keys(name)
    browser.find_element(By.ID, "new-prompt").send_keys("a lighthouse at dusk, waves rolling")
    Select(browser.find_element(By.ID, "new-resolution")).select_by_value("320x180")
    duration = browser.find_element(By.ID, "new-duration")
    duration.clear()
    duration.send_keys("4")
    Select(browser.find_element(By.ID, "new-transition")).select_by_value("fade")
    shot(browser, "submit")
    browser.find_element(By.ID, "new-submit").click()

    wait(browser, lambda d: d.current_url.endswith(f"#/vj/{world.a}/{name}"), 30,
         "the new VideoJob's page")
    spec = vj_get(world, name)["spec"]
    assert (spec["prompt"], spec["resolution"], spec["durationSeconds"], spec["transition"]) \
        == ("a lighthouse at dusk, waves rolling", "320x180", 4, "fade")

    # The bar moves: values seen in the DOM, each higher than the one before, while Running.
    bar = browser.find_element(By.ID, "detail-progress")
    seen: list[int] = []

    def moved(d: WebDriver) -> bool:
        value = progress_of(bar)
        if not seen or value != seen[-1]:
            seen.append(value)
        return len({v for v in seen if 0 < v < 100}) >= 2

    wait(browser, moved, 240, f"the bar to move (seen {seen})")
    assert seen == sorted(seen), seen
    wait(browser, lambda d: d.find_element(By.ID, "detail-phase").text == "Succeeded", 300,
         "Succeeded on the page")
    assert progress_of(bar) == 100
    # Driven by the event stream: the page read the VideoJob once and then only followed it.
    requests = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    own = f"/api/v1/namespaces/{world.a}/videojobs/{name}"
    assert sum(1 for r in requests if r.endswith(own)) == 1, requests
    assert sum(1 for r in requests if r.endswith(own + "/events")) >= 1, requests

    # The video plays through a short-lived link: a finite duration, and time goes by.
    length = wait(browser, lambda d: d.execute_script(
        "const v = document.getElementById('player');"
        "return v.readyState >= 1 && isFinite(v.duration) && v.duration > 0 ? v.duration : 0"),
        60, "the video's metadata")
    assert math.isclose(length, 4, abs_tol=0.5), length
    browser.execute_script("const v = document.getElementById('player'); v.muted = true;"
                           "v.play();")
    wait(browser, lambda d: d.execute_script(
        "return document.getElementById('player').currentTime") > 0.2, 30, "the video to play")
    src = browser.execute_script("return document.getElementById('player').currentSrc")
    assert "/linked-download?token=" in src
    stages = [li.get_attribute("data-stage")
              for li in browser.find_elements(By.CSS_SELECTOR, "#stages li")]
    assert stages[:1] == ["plan"] and "publish" in stages, stages
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#kube-events li"), 30,
         "the VideoJob's Events")
    browser.execute_script("document.getElementById('player').pause()")
    shot(browser, "detail")


def test_images_and_audio_through_the_form(
        browser: WebDriver, gateway: GatewayProcess, world: GatewayWorld,
        tmp_path: Path) -> None:
    """Slideshow mode: the files go up through the uploads endpoint, their URIs into the spec."""
    images = [write_image(tmp_path / f"{i}-scene.png", 320, 180, colour)
              for i, colour in enumerate([(40, 40, 200), (40, 200, 40)])]
    audio = write_wav(tmp_path / "song.wav", 3.0)
    sign_in(browser, gateway, world.tokens["writer"])
    browser.get(gateway.url + "/#/new")
    wait(browser, lambda d: d.find_element(By.ID, "new-view").is_displayed(), 20, "the form")
    browser.find_element(By.CSS_SELECTOR, "input[name=source][value=images]").click()
    wait(browser, lambda d: d.find_element(By.ID, "new-images").is_displayed(), 10,
         "the file inputs")
    assert not browser.find_element(By.ID, "new-prompt").is_displayed()
    browser.find_element(By.ID, "new-images").send_keys("\n".join(str(p) for p in images))
    browser.find_element(By.ID, "new-audio").send_keys(str(audio))
    Select(browser.find_element(By.ID, "new-resolution")).select_by_value("320x180")
    duration = browser.find_element(By.ID, "new-duration")
    duration.clear()
    duration.send_keys("3")
    browser.find_element(By.ID, "new-submit").click()
    wait(browser, lambda d: "#/vj/" in d.current_url, 60, "the new VideoJob's page")
    name = browser.current_url.rsplit("/", 1)[1]
    spec = vj_get(world, name)["spec"]
    assert len(spec["images"]) == 2 and spec["scenes"] == 2, spec
    assert all(f"/{world.a}/_uploads/" in uri for uri in [*spec["images"], spec["audio"]]), spec
    assert spec["images"][0].endswith("0-scene.png") and spec["audio"].endswith("song.wav")
    wait(browser, lambda d: d.find_element(By.ID, "detail-phase").text == "Succeeded", 300,
         "Succeeded on the page")
    length = wait(browser, lambda d: d.execute_script(
        "const v = document.getElementById('player');"
        "return v.readyState >= 1 && isFinite(v.duration) && v.duration > 0 ? v.duration : 0"),
        60, "the video's metadata")
    assert math.isclose(length, 3, abs_tol=0.5), length


def test_the_api_refusal_is_shown_next_to_its_field(
        browser: WebDriver, gateway: GatewayProcess, world: GatewayWorld) -> None:
    sign_in(browser, gateway, world.tokens["writer"])
    browser.get(gateway.url + "/#/new")
    wait(browser, lambda d: d.find_element(By.ID, "new-view").is_displayed(), 20, "the form")
    browser.find_element(By.ID, "new-prompt").send_keys("too long a video")
    duration = browser.find_element(By.ID, "new-duration")
    duration.clear()
    duration.send_keys("601")  # the CRD allows 1..600: the API server names the field
    browser.find_element(By.ID, "new-submit").click()
    said = wait(browser, lambda d: d.find_element(By.ID, "new-duration-error").text, 20,
                "the refusal next to the duration")
    assert "600" in said, said
    assert duration.get_attribute("aria-invalid") == "true"
    assert "422" in browser.find_element(By.ID, "new-error").text
    assert browser.current_url.endswith("#/new")  # still on the form, nothing made
    shot(browser, "submit-refused")


def test_cancel_another_videojob_from_the_list(
        browser: WebDriver, gateway: GatewayProcess, world: GatewayWorld) -> None:
    name = long_videojob(world, "long")
    sign_in(browser, gateway, world.tokens["writer"])
    wait(browser, lambda d: row(d, name), 30, "the new VideoJob in the list")
    live = wait(browser, lambda d: row(d, name).get_attribute("data-live") == "yes", 30,
                "its row to follow the event stream")
    assert live
    # The row's bar moves too, from the same kind of stream the detail page follows.
    wait(browser, lambda d: progress_of(row(d, name).find_element(By.TAG_NAME, "progress")) > 0,
         120, "the row's bar to move")
    shot(browser, "list")
    # Suspend and resume from the row: the API says so, and the row follows through the stream.
    # The suspend's answer is held until the stream has shown the operator's Suspended: an
    # answer that comes after a newer state must not roll the row back to Running.
    browser.execute_script(HOLD_SUSPEND_ANSWER, name, f"li.job[data-name='{name}'] .phase")
    row(browser, name).find_element(By.CSS_SELECTOR, "button[data-action=suspend]").click()
    wait(browser, lambda d: row(d, name).find_elements(
        By.CSS_SELECTOR, "button[data-action=resume]"), 30, "the Resume button")
    assert vj_get(world, name)["spec"]["suspend"] is True
    wait(browser, lambda d: row(d, name).find_element(By.CSS_SELECTOR, ".phase")
         .get_attribute("data-phase") == "Suspended", 60, "Suspended in the row",
         lambda: f"the API's phase: {vj_phase(world, name)}")
    wait(browser, lambda d: d.find_element(By.ID, "status").text == f"{name}: suspended.", 30,
         "the held answer taken")
    assert row(browser, name).find_element(By.CSS_SELECTOR, ".phase").get_attribute(
        "data-phase") == "Suspended"
    row(browser, name).find_element(By.CSS_SELECTOR, "button[data-action=resume]").click()
    wait(browser, lambda d: row(d, name).find_elements(
        By.CSS_SELECTOR, "button[data-action=suspend]"), 30, "the Suspend button again")
    assert vj_get(world, name)["spec"]["suspend"] is False
    cancel = row(browser, name).find_element(By.CSS_SELECTOR, "button[data-action=cancel]")
    assert cancel.get_attribute("aria-label") == f"Cancel {name}"
    cancel.click()
    wait(browser, lambda d: cancel.text == "Press again to confirm", 10, "the second press asked")
    assert row(browser, name).find_element(By.CSS_SELECTOR, ".phase").get_attribute(
        "data-phase") not in ("Cancelling", "Deleted")  # one press deletes nothing
    cancel.click()  # the same button: progress updates do not redraw it
    wait(browser, lambda d: row(d, name).find_element(By.CSS_SELECTOR, ".phase")
         .get_attribute("data-phase") in ("Cancelling", "Deleted"), 60,
         "the row to say it is being cancelled (from the stream)")

    def gone() -> bool:
        try:
            return bool(vj_get(world, name)["metadata"].get("deletionTimestamp"))
        except client.ApiException as e:
            return e.status == 404

    wait_until(gone, 60, f"{name} deleted")


def test_suspend_from_the_detail_page(browser: WebDriver, gateway: GatewayProcess,
                                     world: GatewayWorld) -> None:
    """The detail page follows its stream: the suspend's answer, held until the stream has
    shown the operator's Suspended, does not roll the page back to Running."""
    name = long_videojob(world, "detail")
    sign_in(browser, gateway, world.tokens["writer"])
    browser.get(gateway.url + f"/#/vj/{world.a}/{name}")
    phase = "#detail-phase"
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, phase).get_attribute(
        "data-phase") == "Running", 120, "Running on the page")
    wait(browser, lambda d: d.find_element(By.ID, "detail-view").get_attribute(
        "data-live") == "yes", 30, "the page to follow the event stream")
    browser.execute_script(HOLD_SUSPEND_ANSWER, name, phase)
    browser.find_element(By.CSS_SELECTOR, "#detail-actions button[data-action=suspend]").click()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, phase).get_attribute(
        "data-phase") == "Suspended", 60, "Suspended on the page",
         lambda: f"the API's phase: {vj_phase(world, name)}")
    wait(browser, lambda d: d.find_element(By.ID, "status").text == f"{name}: suspended.", 30,
         "the held answer taken")
    assert browser.find_element(By.CSS_SELECTOR, phase).get_attribute("data-phase") == \
        "Suspended"
    assert browser.find_elements(By.CSS_SELECTOR, "#detail-actions button[data-action=resume]")
    world.admin.delete_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, name)


def test_keyboard_labels_and_focus(browser: WebDriver, gateway: GatewayProcess,
                                   world: GatewayWorld) -> None:
    sign_in(browser, gateway, world.tokens["writer"])
    browser.get(gateway.url + "/#/new")
    wait(browser, lambda d: d.find_element(By.ID, "new-view").is_displayed(), 20, "the form")
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))"
        ".map(e => e.outerHTML)")
    assert unlabelled == []
    # Tab from the top reaches the form's button, and the focus is drawn.
    browser.find_element(By.TAG_NAME, "body").click()
    reached = []
    for _ in range(40):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        active = browser.switch_to.active_element
        reached.append(active.get_attribute("id") or active.tag_name)
        if active.get_attribute("id") == "new-submit":
            break
    assert reached[-1] == "new-submit", reached
    outline = browser.execute_script(
        "const s = getComputedStyle(document.activeElement);"
        "return [s.outlineStyle, s.outlineWidth]")
    assert outline[0] != "none" and outline[1] != "0px", outline
    for bar in browser.find_elements(By.TAG_NAME, "progress"):
        assert bar.get_attribute("aria-label")
    # On the list, the buttons are real buttons, reachable by Tab.
    browser.get(gateway.url + "/#/")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "li.job"), 20, "the rows")
    assert browser.find_elements(By.CSS_SELECTOR, "[onclick], a[href^='javascript']") == []
    browser.find_element(By.TAG_NAME, "body").click()
    tags = set()
    for _ in range(40):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        active = browser.switch_to.active_element
        tags.add((active.tag_name, active.get_attribute("data-action")))
        if ("button", "cancel") in tags or ("button", "suspend") in tags:
            break
    assert ("button", "cancel") in tags or ("button", "suspend") in tags, tags


def test_other_users_strings_stay_text(browser: WebDriver, gateway: GatewayProcess,
                                       world: GatewayWorld, cluster: Cluster) -> None:
    """An Event's message (anyone who may create Events writes them) with markup in it."""
    name = f"marked-{uuid.uuid4().hex[:5]}"
    made = world.admin.create_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
        "metadata": {"name": name, "labels": {"team": "x"}},
        "spec": {"prompt": "held", **SMALL, "suspend": True}})
    payload = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    cluster.core.create_namespaced_event(world.a, client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="marked-"),
        involved_object=client.V1ObjectReference(
            api_version=f"{GROUP}/{VERSION}", kind="VideoJob", name=name, namespace=world.a,
            uid=made["metadata"]["uid"]),
        reason="Probe", message=payload, type="Warning",
        first_timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        last_timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    sign_in(browser, gateway, world.tokens["writer"])
    browser.get(gateway.url + f"/#/vj/{world.a}/{name}")
    shown = wait(browser, lambda d: [li.text for li in
                                     d.find_elements(By.CSS_SELECTOR, "#kube-events li")
                                     if "Probe" in li.text], 30, "the Event")
    assert payload in shown[0]
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main b") == []
    assert browser.execute_script("return window.pwned") is None
    world.admin.delete_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, name)


def test_an_api_key_sees_its_namespace_only(browser: WebDriver, gateway: GatewayProcess,
                                            world: GatewayWorld) -> None:
    sign_in(browser, gateway, world.api_key, mode="key")
    options = [o.get_attribute("value") for o in
               browser.find_elements(By.CSS_SELECTOR, "#new-namespace option")]
    assert options == [world.a]
    wait(browser, lambda d: d.find_element(By.ID, "who").text == "API key", 10, "the mode")


def test_phone_width(browser: WebDriver, gateway: GatewayProcess, world: GatewayWorld) -> None:
    sign_in(browser, gateway, world.tokens["writer"])
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    try:
        done = [vj["metadata"]["name"] for vj in world.admin.list_namespaced_custom_object(
            GROUP, VERSION, world.a, PLURAL)["items"]
            if (vj.get("status") or {}).get("phase") == "Succeeded"]
        for page in ["#/", "#/new", *(f"#/vj/{world.a}/{n}" for n in done[:1])]:
            browser.get(gateway.url + "/" + page)
            wait(browser, lambda d: d.execute_script(
                "return [...document.querySelectorAll('main > section')]"
                ".some(s => !s.hidden)"), 20, f"{page} shown")
            if page == "#/":
                wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "li.job"), 20, "rows")
                shot(browser, "phone")
            widths = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]")
            assert widths[1] == 390 and widths[0] <= widths[1], (page, widths)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# --- what the console reads besides VideoJobs, over HTTP


def test_namespaces_and_events_are_what_the_caller_may_read(
        gateway: GatewayProcess, world: GatewayWorld, cluster: Cluster) -> None:
    with gateway.client(token=world.tokens["writer"]) as writer, \
            gateway.client(token=world.tokens["reader"]) as reader, \
            gateway.client(token=world.tokens["auditor"]) as auditor, \
            gateway.client(api_key=world.api_key) as key:
        assert writer.get("/api/v1/namespaces").json() == {"namespaces": [{"name": world.a}]}
        assert key.get("/api/v1/namespaces").json() == {"namespaces": [{"name": world.a}]}
        everyone = {n["name"] for n in auditor.get("/api/v1/namespaces").json()["namespaces"]}
        assert {world.a, world.b, world.system, "default"} <= everyone  # a cluster-wide grant
        assert problem_of(gateway.client().get("/api/v1/namespaces"), 401)

        name = f"evented-{uuid.uuid4().hex[:5]}"
        made = world.admin.create_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob", "metadata": {"name": name},
            "spec": {"prompt": "held", **SMALL, "suspend": True}})
        cluster.core.create_namespaced_event(world.a, client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{name}-"),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}", kind="VideoJob", name=name,
                namespace=world.a, uid=made["metadata"]["uid"]),
            reason="Noted", message="seen", type="Normal"))
        url = f"/api/v1/namespaces/{world.a}/videojobs/{name}/kube-events"
        wait_until(lambda: writer.get(url).status_code == 200, 10, "the VideoJob in the cache")
        assert [(e["reason"], e["message"]) for e in writer.get(url).json()["items"]
                if e["reason"] == "Noted"] == [("Noted", "seen")]
        # The reader may get the VideoJob but not list Events: the API server says no, as them.
        assert problem_of(reader.get(url), 403)
        assert problem_of(writer.get(f"/api/v1/namespaces/{world.b}/videojobs/{name}"
                                     "/kube-events"), 403)
        world.admin.delete_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, name)


# --- download links, over HTTP


def test_download_links(gateway: GatewayProcess, world: GatewayWorld, link_key: Path) -> None:
    items = world.admin.list_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL)["items"]
    done = [vj for vj in items if (vj.get("status") or {}).get("phase") == "Succeeded"]
    if not done:
        pytest.skip("needs the VideoJob the form test made")
    vj = done[0]
    name, uid = vj["metadata"]["name"], vj["metadata"]["uid"]
    other = f"other-{uuid.uuid4().hex[:5]}"
    world.admin.create_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob", "metadata": {"name": other},
        "spec": {"prompt": "held", **SMALL, "suspend": True}})
    base = f"/api/v1/namespaces/{world.a}/videojobs"
    with gateway.client(token=world.tokens["writer"]) as writer, \
            gateway.client() as anyone, gateway.client(token=world.tokens["reader"]) as reader:
        # Issued to a caller who may get the VideoJob; only for a finished one.
        assert anyone.post(f"{base}/{name}/download-link").status_code == 401
        made = writer.post(f"{base}/{name}/download-link")
        assert made.status_code == 200, made.text
        link = made.json()
        assert link["url"].startswith(f"{base}/{name}/linked-download?token=")
        left = time.mktime(time.strptime(link["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")) \
            - time.mktime(time.gmtime())
        assert 0 < left <= 300, left
        assert reader.post(f"{base}/{name}/download-link").status_code == 200
        wait_until(lambda: gateway.client(token=world.tokens["writer"]).get(
            f"{base}/{other}").status_code == 200, 10, "the other VideoJob in the cache")
        assert problem_of(writer.post(f"{base}/{other}/download-link"), 409)

        # No header needed; Range works through it.
        whole = anyone.get(link["url"])
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        part = anyone.get(link["url"], headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and len(part.content) == 100
        assert part.content == whole.content[:100]

        token = link["url"].split("token=")[1]
        expiry, sig = token.split(".")
        key = link_key.read_bytes().strip()
        expired = download_links.issue(key, world.a, name, uid, time.time() - 600, 300).token
        refused = {
            "expired": f"{base}/{name}/linked-download?token={expired}",
            "tampered": f"{base}/{name}/linked-download?token={int(expiry) + 60}.{sig}",
            "another VideoJob": f"{base}/{other}/linked-download?token={token}",
            "another namespace": f"/api/v1/namespaces/{world.b}/videojobs/{name}"
                                 f"/linked-download?token={token}",
            "no token": f"{base}/{name}/linked-download",
            "garbage": f"{base}/{name}/linked-download?token=..%2F..%2Fetc",
        }
        for why, url in refused.items():
            resp = anyone.get(url)
            assert problem_of(resp, 401), why
        assert "expired" in anyone.get(refused["expired"]).json()["detail"]
    world.admin.delete_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, other)


def problem_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json", resp.headers
    doc: dict[str, Any] = resp.json()
    assert doc["status"] == status and doc["detail"], doc
    return doc
