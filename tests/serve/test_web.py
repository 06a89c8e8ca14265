"""The web page at ``/`` in a real browser (Playwright + Debian's Chromium) against the real Serve app.

Upload, boxes, picking an object, drawing a box, a typed article, an API error, a pasted
screenshot, a dropped photo and the events the page sends (failing events must not matter). A screenshot of the search is saved to
``test-artifacts/web-search.png`` under the repository root.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium): the web page test needs a browser",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, Request, sync_playwright  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page with its JavaScript errors, the requests it made and the events it sent."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.events: list[dict] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", self._request)

    def _request(self, r: Request) -> None:
        if not r.url.startswith((self.base, "blob:", "data:")):
            self.foreign.append(r.url)
        if r.url.endswith("/v1/events") and r.method == "POST":
            self.events += json.loads(r.post_data or "{}").get("events", [])

    def request_id(self) -> str | None:
        return self.page.locator("#results").get_attribute("data-request-id")

    def wait_new_results(self, old: str | None) -> str:
        self.page.wait_for_function(
            "old => { const r = document.querySelector('#results');"
            " return r.dataset.requestId && r.dataset.requestId !== old && !document.body.hasAttribute('data-busy'); }",
            arg=old, timeout=TIMEOUT_MS)
        rid = self.request_id()
        assert rid and rid != old
        return rid

    def check_clean(self) -> None:
        assert not self.errors, f"JavaScript errors on the page: {self.errors}"
        assert not self.foreign, f"the page loaded something from elsewhere: {self.foreign}"


@pytest.fixture
def web(browser: Browser, service) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ru-RU")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    w = Watched(page, service.url)
    page.goto(service.url + "/")
    try:
        yield w
    finally:
        context.close()


def photos(service) -> list[Path]:
    return sorted((service.catalog_dir / "scenes" / "images" / "test").glob("*.jpg"))


def upload(web: Watched, path: Path) -> str:
    old = web.request_id()
    web.page.set_input_files("#file", str(path))
    rid = web.wait_new_results(old)
    web.page.wait_for_selector("#stage[data-loaded='true'] .box")
    return rid


def click_box(page: Page, object_id: int) -> None:
    """A mouse click on the object's box where it is not covered by another; else the keyboard (Enter)."""
    box = page.locator(f"#boxes .box[data-object-id='{object_id}']")
    try:
        box.click(trial=True, timeout=1500)
    except PlaywrightTimeoutError:
        box.focus()
        page.keyboard.press("Enter")
    else:
        box.click()


def test_upload_pick_a_box_and_draw_a_box(web: Watched, service, record_property) -> None:
    page = web.page
    assert page.title().startswith("visearch")
    rid = upload(web, photos(service)[0])

    # boxes over the photo, the searched one highlighted; results with title, price, badge
    boxes = page.locator("#boxes .box[data-object-id]")
    assert boxes.count() >= 1
    assert page.locator("#boxes .box.picked").count() == 1
    assert page.locator("#boxes .box .box-label").first.inner_text().strip()
    results = page.locator("#results .result")
    assert results.count() >= 1
    first = results.first
    assert first.locator(".title").inner_text().strip()
    assert "₽" in first.locator(".price").inner_text()
    assert first.locator(".badge").inner_text().strip().split()[0] in ("exact", "similar")
    assert page.locator("#meta [data-testid=variant]").inner_text().startswith("variant ")
    assert "total" in page.locator("#meta [data-testid=timings]").inner_text()
    exact = page.locator("#results .result[data-match=exact]").count()
    assert page.locator("#notice").is_visible() == (exact == 0)

    # impressions were sent for the shown results; a click on a product sends a click
    with page.expect_request(lambda r: r.url.endswith("/v1/events") and '"click"' in (r.post_data or "")) as req:
        first.locator(".result-open").click()
    click = json.loads(req.value.post_data or "{}")["events"][0]
    assert click == {"type": "click", "request_id": rid, "product_id": first.get_attribute("data-product-id"),
                     "position": 0}
    assert req.value.response() is not None and req.value.response().status == 202
    assert any(e["type"] == "impression" and e["request_id"] == rid for e in web.events)

    # click a box (another object than the one searched, when there is one) -> a new search of it
    ids = [int(x) for x in boxes.evaluate_all("bs => bs.map(b => b.dataset.objectId)")]
    picked = int(page.locator("#boxes .box.picked").get_attribute("data-object-id"))
    target = next((i for i in ids if i != picked), picked)
    with page.expect_request(lambda r: r.url.endswith("/v1/search")) as req:
        click_box(page, target)
    body = json.loads(req.value.post_data or "{}")
    assert body["object_id"] == target and body["session_id"]
    rid = web.wait_new_results(rid)
    assert page.locator(f"#boxes .box.picked[data-object-id='{target}']").count() == 1

    # drag on the photo -> a box in photo pixels is searched
    frame = page.locator("#photo").bounding_box()
    assert frame is not None
    natural = page.evaluate("() => [document.querySelector('#photo').naturalWidth,"
                            " document.querySelector('#photo').naturalHeight]")
    fx1, fy1, fx2, fy2 = 0.12, 0.18, 0.62, 0.7
    with page.expect_request(lambda r: r.url.endswith("/v1/search")) as req:
        page.mouse.move(frame["x"] + fx1 * frame["width"], frame["y"] + fy1 * frame["height"])
        page.mouse.down()
        page.mouse.move(frame["x"] + 0.4 * frame["width"], frame["y"] + 0.4 * frame["height"], steps=4)
        page.mouse.move(frame["x"] + fx2 * frame["width"], frame["y"] + fy2 * frame["height"], steps=4)
        page.mouse.up()
    body = json.loads(req.value.post_data or "{}")
    want = [fx1 * natural[0], fy1 * natural[1], fx2 * natural[0], fy2 * natural[1]]
    assert "object_id" not in body and body["box"] == pytest.approx(want, abs=3), (body, want)
    web.wait_new_results(rid)
    assert page.locator("#boxes .box.user").count() == 1
    assert page.locator("#results .result").count() >= 1

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-search.png"
    try:  # the product photos in view have loaded (a missing one must not fail the test)
        page.wait_for_function("() => [...document.querySelectorAll('#results img')].every(i =>"
                               " i.complete || i.getBoundingClientRect().top > innerHeight)", timeout=5000)
    except PlaywrightTimeoutError:
        pass
    page.screenshot(path=str(shot))
    record_property("screenshot", str(shot))
    print(f"screenshot: {shot}")
    web.check_clean()


def test_typed_article_puts_its_product_first_as_exact(web: Watched, service) -> None:
    products = pq.read_table(service.catalog_dir / "products.parquet", columns=["product_id", "article", "title"])
    rows = [r for r in products.to_pylist() if r["article"]]
    row = rows[len(rows) // 2]
    page = web.page
    old = web.request_id()
    page.fill("#article", row["article"])
    page.press("#article", "Enter")
    web.wait_new_results(old)
    first = page.locator("#results .result").first
    assert first.get_attribute("data-product-id") == row["product_id"]
    assert first.get_attribute("data-match") == "exact"
    assert first.locator(".badge.exact").is_visible()
    assert (first.locator(".title").text_content() or "").strip() == (row["title"] or row["product_id"]).strip()
    assert row["article"] in first.locator(".article").inner_text()
    assert not page.locator("#notice").is_visible()
    assert page.locator("#error").is_hidden()
    web.check_clean()


def test_an_api_error_is_shown(web: Watched, service) -> None:
    data = b"just some notes, not a photo\n"
    expected = httpx.post(service.url + "/v1/photo", files={"image": ("notes.txt", data, "text/plain")}, timeout=30)
    assert expected.status_code in (415, 422), expected.text
    message = expected.json()["error"]["message"]
    page = web.page
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": data}])
    page.wait_for_selector("#error:not([hidden])")
    assert page.locator("#error .error-message").inner_text() == message
    assert page.locator("#error").is_visible()

    # the page still works: a typed article that is not one -> its 422 message, then a photo clears the error
    page.fill("#article", "abc")
    page.press("#article", "Enter")
    page.wait_for_function("m => document.querySelector('#error .error-message')?.textContent !== m", arg=message)
    assert "abc" in page.locator("#error .error-message").inner_text()
    upload(web, photos(service)[1])
    assert page.locator("#error").is_hidden()
    web.check_clean()


def test_pasted_screenshot_is_searched(web: Watched, service) -> None:
    page = web.page
    old = web.request_id()
    data = base64.b64encode(photos(service)[2].read_bytes()).decode()
    dispatched = page.evaluate(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "screenshot.jpg", {type: "image/jpeg"}));
            const ev = new ClipboardEvent("paste", {clipboardData: dt, bubbles: true, cancelable: true});
            if (!ev.clipboardData || !ev.clipboardData.items.length) return false;
            document.body.dispatchEvent(ev);
            return true;
        }""", data)
    if not dispatched:
        pytest.skip("this Chromium does not carry a DataTransfer on a synthetic paste event")
    web.wait_new_results(old)
    page.wait_for_selector("#stage[data-loaded='true'] .box")
    assert page.evaluate("() => window.visearch.sessionId")
    assert page.locator("#results .result").count() >= 1
    web.check_clean()


def test_dropped_photo_is_searched(web: Watched, service) -> None:
    page = web.page
    old = web.request_id()
    data = base64.b64encode(photos(service)[3].read_bytes()).decode()
    page.evaluate(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "dropped.jpg", {type: "image/jpeg"}));
            const zone = document.querySelector("#drop");
            for (const type of ["dragenter", "dragover", "drop"])
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""", data)
    web.wait_new_results(old)
    page.wait_for_selector("#stage[data-loaded='true'] .box")
    assert page.url.rstrip("/") == service.url, "the browser navigated to the dropped file"
    web.check_clean()


def test_failing_events_do_not_break_the_page(web: Watched, service) -> None:
    page = web.page
    page.route("**/v1/events", lambda route: route.abort())
    upload(web, photos(service)[0])
    page.locator("#results .result .result-open").first.click()
    page.locator("#results .result .cart").first.click()
    assert page.locator("#results .result.selected").count() == 1
    assert page.locator("#error").is_hidden()
    old = web.request_id()
    page.locator("#boxes .box[data-object-id]").first.focus()  # boxes are buttons: the keyboard works too
    page.keyboard.press("Enter")
    web.wait_new_results(old)
    web.check_clean()


def test_tags_show_and_the_text_box_refines(web: Watched, service) -> None:
    page = web.page
    assert page.locator("#refine-form").is_hidden()  # nothing to refine before a photo
    upload(web, photos(service)[2])
    chips = page.locator("#tags .tag")
    assert chips.count() == 5 and all(c.strip() for c in chips.all_inner_texts())
    assert chips.first.get_attribute("data-facet") in ("category", "colour", "pattern", "material", "brand", "other")
    picked = page.locator("#boxes .box.picked").get_attribute("data-object-id")

    # an empty text is refused on the page, without a request
    old = web.request_id()
    page.fill("#refine", "   ")
    page.press("#refine", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert web.request_id() == old

    page.fill("#refine", "такой же, но красный")
    page.press("#refine", "Enter")
    web.wait_new_results(old)
    assert page.locator("#error").is_hidden()
    assert "такой же, но красный" in page.locator("#tags .refinement").inner_text()
    assert page.locator("#boxes .box.picked").get_attribute("data-object-id") == picked  # the same object, refined
    assert page.locator("#results .result").count() >= 1

    # a text in no language the catalog speaks: the API's 400 message on the page, the results kept
    page.fill("#refine", "红色的")
    page.press("#refine", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "Russian or English" in page.locator("#error .error-message").inner_text()
    assert page.locator("#results .result").count() >= 1
    web.check_clean()
