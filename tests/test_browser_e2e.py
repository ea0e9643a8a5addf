"""In a real browser: headless Chromium drives the reference frontend on the sandbox.

The sandbox (slot web) serves a real Vite build of reference/frontend and the
reference backend on the sandbox's own PostgreSQL (`sandbox up`
starts it, `deploy` migrates it). Chromium reaches it by its server name over
TLS; third-party pages that embed the widget come from other origins (a small
http.server on 127.0.0.132). Covered: the page and its lazy chunk load; sign
up, open a dialog, send a message and see the agent's reply arrive over the
WebSocket without a reload; the widget answers a visitor on an allowed origin
and is refused by CORS on any other.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser_support import (
    CHROMIUM,
    build_frontend,
    chromium_args,
    missing_browser,
    page_server,
    widget_page,
)
from tests.e2e_support import sandbox_marks
from tests.operate_sandbox import SERVER_NAME, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, *sandbox_marks(),
              pytest.mark.skipif(missing_browser() is not None,
                                 reason=missing_browser() or "")]

SLOT = Slot("127.0.0.131", 2431, 8431, 8531, (3431, 3432))
ORIGINS_ADDRESS = "127.0.0.132"
ALLOWED_PORT, FOREIGN_PORT = 8632, 8633
SITE = f"https://{SERVER_NAME}:{SLOT.https_port}"
WAIT_MS = 15_000

KNOWLEDGE = ("Delivery takes three days within the city and a week to the regions. "
             "Orders over 5000 rubles are delivered free of charge.")
QUESTION = "How many days does delivery take?"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    """The web slot's sandbox (with its PostgreSQL, migrated by deploy) serving a real build."""
    dist = build_frontend(tmp_path_factory.mktemp("dist") / "dist")
    with deployed_sandbox(tmp_path_factory.mktemp("browser"), SLOT, frontend_dist=dist) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, resolving the sandbox's name to its address."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=chromium_args(SERVER_NAME, SLOT.address))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies, no storage) and its page."""
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def api(box: OpBox, method: str, path: str, token: str | None = None,
        body: dict[str, Any] | None = None) -> Any:
    """The sandbox's API through nginx (the test's own client, not the browser)."""
    headers = {"Host": SERVER_NAME, **({"Authorization": f"Bearer {token}"} if token else {})}
    response = httpx.request(method, box.url(path), headers=headers, json=body, verify=False,
                             timeout=20, trust_env=False)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def signed_up_user(box: OpBox, email: str | None = None,
                   password: str | None = None) -> tuple[str, str]:
    """A new user through the API: (access token, their first project's id)."""
    email = email or f"owner-{secrets.token_hex(4)}@example.test"
    session = api(box, "POST", "/api/auth/signup",
                  body={"email": email, "password": password or secrets.token_urlsafe(12)})
    token = session["access_token"]
    project_id = api(box, "GET", "/api/projects", token)["items"][0]["id"]
    return token, project_id


def test_page_loads_over_tls_with_its_name_and_lazy_chunk(box: OpBox, page: Any) -> None:
    chunks: list[str] = []
    page.on("response", lambda r: chunks.append(r.url) if "/assets/" in r.url else None)
    response = page.goto(f"{SITE}/")
    assert response is not None and response.status == 200
    assert response.server_addr() == {"ipAddress": SLOT.address, "port": SLOT.https_port}
    security = response.security_details()
    assert security is not None and security.get("protocol", "").startswith("TLS")
    page.get_by_test_id("health-status").filter(has_text="ok").wait_for()
    # The live channel is its own hashed chunk, fetched after the first paint.
    page.get_by_test_id("ws-hello").filter(has_text="release").wait_for()
    assert any(re.search(r"/assets/LiveChannel-[\w-]+\.js$", url) for url in chunks), chunks
    assert page.get_by_test_id("build").inner_text() == "browser-e2e"


def test_signup_dialog_and_reply_over_websocket(box: OpBox, page: Any) -> None:
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(str(f))))
    page.goto(f"{SITE}/")
    email = f"visitor-{secrets.token_hex(4)}@example.test"
    password = secrets.token_urlsafe(12)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Create account").click()
    page.get_by_test_id("user-email").filter(has_text=email).wait_for()
    page.get_by_test_id("chat-ws").filter(has_text="live").wait_for()

    # The agent answers from the project's knowledge: give it some, as the user.
    token = page.evaluate("JSON.parse(localStorage.getItem('adapto.session')).access_token")
    project_id = api(box, "GET", "/api/projects", token)["items"][0]["id"]
    api(box, "POST", "/api/knowledge/sources", token,
        {"project_id": project_id, "title": "Delivery", "content": KNOWLEDGE})

    page.fill("input[name=title]", "Delivery question")
    page.get_by_role("button", name="Create", exact=True).click()
    page.get_by_test_id("dialog").wait_for()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.fill("input[name=message]", QUESTION)
    page.get_by_test_id("dialog").get_by_role("button", name="Send").click()
    page.locator("[data-testid=messages] li[data-role=user]").filter(has_text=QUESTION).wait_for()
    # The answer is written by a background task after the POST has returned:
    # only the WebSocket can bring it to this page.
    reply = page.locator("[data-testid=messages] li[data-role=assistant]")
    reply.first.wait_for()
    assert "three days" in reply.first.inner_text()
    assert navigations == []  # no reload, no navigation: the page was pushed the reply
    assert any('"role":"assistant"' in f.replace(" ", "") for f in frames), frames[-5:]


def test_log_in_shows_dialogs_and_their_history(box: OpBox, page: Any) -> None:
    email, password = f"back-{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(12)
    token, project_id = signed_up_user(box, email, password)
    dialog = api(box, "POST", "/api/dialogs", token, {"project_id": project_id, "title": "Old one"})
    api(box, "POST", f"/api/chat/{dialog['id']}/messages", token, {"content": "written earlier"})
    page.goto(f"{SITE}/")
    page.get_by_role("button", name="I have an account: log in").click()
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "wrong password")
    page.get_by_role("button", name="Log in", exact=True).click()
    page.get_by_test_id("account-error").filter(has_text="invalid").wait_for()
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.get_by_test_id("dialogs").get_by_role("button", name="Old one").click()
    page.locator("[data-testid=messages] li").filter(has_text="written earlier").wait_for()
    # A reload keeps the session (localStorage), and logging out forgets it.
    page.reload()
    page.get_by_test_id("user-email").filter(has_text=email).wait_for()
    page.get_by_role("button", name="Log out").click()
    page.get_by_test_id("account").wait_for()
    assert page.evaluate("localStorage.getItem('adapto.session')") is None


@pytest.fixture()
def widget(box: OpBox) -> dict[str, Any]:
    """A widget whose only allowed origin is the allowed test page's, with knowledge."""
    token, project_id = signed_up_user(box)
    api(box, "POST", "/api/knowledge/sources", token,
        {"project_id": project_id, "title": "Delivery", "content": KNOWLEDGE})
    created = api(box, "POST", "/api/widget/settings", token, {
        "project_id": project_id,
        "allowed_origins": [f"http://{ORIGINS_ADDRESS}:{ALLOWED_PORT}"],
        "settings": {"title": "Ask the shop", "greeting": "Hello! Ask about delivery."}})
    return {**created, "owner_token": token}


def test_widget_on_an_allowed_origin_answers_the_visitor(widget: dict[str, Any],
                                                         page: Any) -> None:
    pages = {"/": widget_page(SITE, widget["widget_id"])}
    with page_server(ORIGINS_ADDRESS, ALLOWED_PORT, pages) as origin:
        page.goto(f"{origin}/")
        root = page.locator("[data-adapto-widget]")
        root.locator("[data-part=status][data-state=ready]").wait_for()
        assert root.locator("[data-part=title]").inner_text() == "Ask the shop"
        root.locator("input[name=text]").fill(QUESTION)
        root.get_by_role("button", name="Send").click()
        answer = root.locator("li[data-role=assistant]").filter(has_text="three days")
        answer.wait_for()
        assert root.locator("li[data-role=user]").inner_text() == QUESTION


def test_widget_on_another_origin_is_refused_by_cors(box: OpBox, widget: dict[str, Any],
                                                     page: Any) -> None:
    console: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
    pages = {"/": widget_page(SITE, widget["widget_id"])}
    with page_server(ORIGINS_ADDRESS, FOREIGN_PORT, pages) as origin:
        page.goto(f"{origin}/")
        root = page.locator("[data-adapto-widget]")
        status = root.locator("[data-part=status][data-state=error]")
        status.wait_for()
        assert "Widget unavailable" in status.inner_text()
        # The send button stays disabled; submit anyway, as a script on that
        # page could: the preflight is refused and nothing is shown.
        root.locator("input[name=text]").fill(QUESTION)
        failures = len(failed)
        root.locator("form").evaluate(
            "form => form.dispatchEvent(new Event('submit', {cancelable: true}))")
        status.filter(has_text="sending failed").wait_for()
        assert root.locator("li").count() == 0
        assert len(failed) > failures
    assert any("CORS policy" in line and "/api/widget/" in line for line in console), console
    assert any("/api/widget/" in line for line in failed), failed
    # The server refused too, not only the browser: no Access-Control-Allow-Origin
    # for that origin, and the owner has no visitor dialog.
    refused = httpx.get(box.url(f"/api/widget/{widget['widget_id']}/config"),
                        headers={"Host": SERVER_NAME, "Origin": origin}, verify=False,
                        trust_env=False, timeout=10)
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    dialogs = api(box, "GET", f"/api/dialogs?project_id={widget['project_id']}",
                  widget["owner_token"])
    assert dialogs["items"] == []

