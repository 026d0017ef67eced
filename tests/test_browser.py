"""A real browser (Debian's Chromium through Playwright) opens the studio, visits every tab and saves
screenshots under tests/artifacts/, in English and in Chinese."""
from __future__ import annotations

import shutil

import pytest

from tests.conftest import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TABS_EN = ["Text generation", "Face synthesis", "Text-to-image", "Voice synthesis", "My digital twin", "Batch videos",
           "Models"]
TABS_ZH = ["文本生成", "人脸合成", "文生图", "语音合成", "我的数字分身", "批量视频", "模型"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    assert shutil.which(CHROMIUM), "Debian's chromium is required: apt-get install chromium (see .ci/run)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.mark.parametrize("locale,tabs", [("en-US", TABS_EN), ("zh-CN", TABS_ZH)])
def test_every_tab_opens_and_renders(studio, browser, locale, tabs):
    _, url, _ = studio
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(locale=locale, viewport={"width": 1280, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name=tabs[0]).wait_for(timeout=60000)
    for index, label in enumerate(tabs):
        tab = page.get_by_role("tab", name=label)
        tab.click()
        page.wait_for_timeout(400)
        assert tab.get_attribute("aria-selected") == "true", label
        panel = page.locator("[role=tabpanel]:visible").first
        text = panel.inner_text()
        assert text.strip(), f"tab {label} shows nothing"
        assert "__i18n__" not in text and "translation_metadata" not in text, f"untranslated text in {label}"
        page.screenshot(path=str(ARTIFACTS / f"tab-{locale}-{index}.png"), full_page=True)
    assert errors == []
    page.close()


def test_language_links_switch_and_remember(studio, browser):
    _, url, _ = studio
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name="My digital twin").wait_for(timeout=60000)
    page.get_by_role("link", name="中文").click()
    page.get_by_role("tab", name="我的数字分身").wait_for(timeout=60000)
    assert page.get_by_role("tab", name="文本生成").is_visible()
    page.goto(url, wait_until="load")  # remembered without the parameter
    page.get_by_role("tab", name="人脸合成").wait_for(timeout=60000)
    page.screenshot(path=str(ARTIFACTS / "language-zh.png"))
    page.goto(url + "?lang=en", wait_until="load")
    page.get_by_role("tab", name="My digital twin").wait_for(timeout=60000)
    context.close()


@pytest.mark.slow
def test_text_tab_streams_an_answer_in_the_browser(studio, browser):
    """A user types a question, presses Generate, and the bundled model's answer appears."""
    _, url, _ = studio
    page = browser.new_page(locale="en-US")
    page.goto(url + "?lang=en", wait_until="load")
    page.get_by_role("tab", name="Text generation").wait_for(timeout=60000)
    page.get_by_role("textbox", name="Prompt", exact=True).fill("What is the capital of France?")
    page.get_by_role("spinbutton", name="Temperature", exact=False).first.fill("0")
    page.keyboard.press("Tab")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('Paris'))", timeout=180000)
    page.screenshot(path=str(ARTIFACTS / "text-answer.png"))
    page.close()
