"""A rater reads in headless Chromium: the model renders, rotates, is scored by keyboard."""

from __future__ import annotations

from pathlib import Path

import pytest

from studyapp.reading import services
from studyapp.reading.models import Answer, Assignment
from tests.studyapp.factories import TEST_PASSWORD, CaseFactory, complete_reconstruction

from .conftest import build_study

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-unsafe-swiftshader",  # software WebGL without a GPU
]
BUNDLE = Path(__file__).resolve().parents[3] / "static" / "dist" / "reading-viewer.js"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="chromium is not installed (CI installs Debian's; here: apt-get install -y chromium)",
    ),
    pytest.mark.skipif(
        not BUNDLE.exists(), reason="frontend bundle missing: run `npm run -s build`"
    ),
]


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # ordinary synchronous code, so Django's async guard is lifted for it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


@pytest.fixture
def reading_study(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    study, (reader,) = build_study(readers=1, knees=0, launch=False)
    for _ in range(2):
        case = CaseFactory(study=study.study)
        reconstruction = complete_reconstruction(case, "ct")
        item = study.items.create(reconstruction=reconstruction)
        services.prepare_item_file(item)
    services.launch(study, actor=None)
    return study, reader


def test_rater_scores_by_keyboard_and_reaches_the_next_item(
    live_server, reading_study, browser_page
):
    study, reader = reading_study
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", reader.username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.click("tr[data-session] a.button")
    page.wait_for_url("**/reading/items/*/")
    first = Assignment.objects.get(reader=reader, session=1, position=1)
    assert page.url.endswith(f"/reading/items/{first.pk}/")
    page.wait_for_selector("#viewer[data-rendered=true]", timeout=20000)

    # Rotate: drag across the canvas.
    box = page.locator("#viewer canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 150, y + 40, steps=8)
    page.mouse.up()
    page.wait_for_selector("#viewer[data-interactions='1']")
    page.click("[data-view=lateral]")

    # Score the three questions with the keyboard, then Enter submits and opens the next item.
    page.locator("h1").click()
    for key in ("4", "2", "5"):
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    second = Assignment.objects.get(reader=reader, session=1, position=2)
    page.wait_for_url(f"**/reading/items/{second.pk}/")
    page.wait_for_selector("#viewer[data-rendered=true]", timeout=20000)

    first.refresh_from_db()
    assert first.submitted_at is not None and first.opened_at is not None
    assert 0 <= first.active_seconds <= (first.submitted_at - first.opened_at).total_seconds()
    values = list(
        Answer.objects.filter(assignment=first)
        .order_by("question__order")
        .values_list("value", flat=True)
    )
    assert values == [4, 2, 5]
