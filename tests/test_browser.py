"""A real browser (Debian's Chromium through Playwright) opens the studio, visits every tab and saves
screenshots under tests/artifacts/, in English and in Chinese."""
from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TABS_EN = ["Text generation", "Face synthesis", "Text-to-image", "Voice synthesis", "My digital twin",
           "Talk to my twin", "Batch videos", "Check a file", "Models"]
TABS_ZH = ["文本生成", "人脸合成", "文生图", "语音合成", "我的数字分身", "和我的分身对话", "批量视频", "检查文件", "模型"]

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
        expect(tab).to_have_attribute("aria-selected", "true")
        panel = page.locator("[role=tabpanel]:visible").first
        expect(panel).not_to_have_text(re.compile(r"^\s*$"))  # waits until the tab shows something
        text = panel.inner_text()
        assert "__i18n__" not in text and "translation_metadata" not in text, f"untranslated text in {label}"
        page.screenshot(path=str(ARTIFACTS / f"tab-{locale}-{index}.png"), full_page=True)
    assert errors == []
    page.close()


# Four or more English words in a row: a sentence or a phrase someone forgot to translate. Names, ids and
# units rarely make four words (commands and paths are inside code elements, which are not read).
ENGLISH_PHRASE = re.compile(r"[A-Za-z]{2,}(?:[ ,']+[A-Za-z]{2,}){3,}")
# Text a person reads in a tab: text nodes outside code, placeholders, the shown value of dropdowns.
VISIBLE_TEXT = """(panel) => {
  const out = [];
  const walker = document.createTreeWalker(panel, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest('code, pre, textarea, script, style, svg') || !el.checkVisibility()) continue;
    if (node.textContent.trim()) out.push(node.textContent.trim());
  }
  for (const el of panel.querySelectorAll('input, textarea')) {
    if (!el.checkVisibility()) continue;
    if (el.placeholder) out.push(el.placeholder);
    if (el.tagName === 'INPUT' && el.type === 'text' && el.value) out.push(el.value);
  }
  return out;
}"""


def english_in(panel) -> list[str]:
    return [text for text in panel.evaluate(VISIBLE_TEXT) if ENGLISH_PHRASE.search(text)]


def open_accordions(panel) -> None:
    for accordion in panel.locator("button.label-wrap:not(.open)").all():
        if accordion.is_visible():
            accordion.click()


TAB_IDS = ["text", "face", "image", "voice", "twin", "chat", "batch", "provenance", "models"]  # in TABS_ZH's order


@pytest.mark.parametrize("tab", TAB_IDS)
def test_the_chinese_page_has_no_english_sentences(studio, browser, tab):
    """?lang=zh: every tab (its accordions open, every wizard step, the twin-script preset) reads in Chinese."""
    _, url, _ = studio
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url + "?lang=zh", wait_until="load")
    top = page.locator("[role=tablist]").first
    label = TABS_ZH[TAB_IDS.index(tab)]
    top.get_by_role("tab", name=label, exact=True).click()
    panel = page.locator("[role=tabpanel]:visible").first
    expect(panel).not_to_have_text(re.compile(r"^\s*$"))
    views = []  # (what is shown, English found there)
    if tab == "text":
        page.get_by_text("数字分身的口播稿").click()  # the twin-script preset shows its own controls
        expect(page.get_by_label("说话人（人设）")).to_be_visible()
    if tab == "twin":
        steps = panel.get_by_role("tab")
        expect(steps.first).to_be_visible()
        for index in range(steps.count()):
            steps.nth(index).click()
            expect(steps.nth(index)).to_have_attribute("aria-selected", "true")
            step_panel = panel.locator("[role=tabpanel]:visible").last
            open_accordions(step_panel)
            views.append((steps.nth(index).inner_text(), english_in(step_panel)))
    else:
        open_accordions(panel)
        views.append((label, english_in(panel)))
    page.screenshot(path=str(ARTIFACTS / f"zh-{tab}.png"), full_page=True)
    page.close()
    assert all(not found for _, found in views), views


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


def test_use_as_twin_script_opens_the_wizard_on_the_script_step(studio, browser):
    _, url, _ = studio
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url + "?lang=en", wait_until="load")
    page.get_by_role("tab", name="Text generation").click()
    page.get_by_text("Script for my digital twin").click()
    page.locator("#text-output textarea").fill("Hello! I am the text tab's script.")
    page.get_by_role("button", name="Use as twin script").click()
    expect(page.get_by_role("tab", name="My digital twin")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="2. Script")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_label("Script (English or Chinese", exact=False)).to_have_value("Hello! I am the text tab's script.")
    page.close()


@pytest.mark.slow
def test_an_error_toast_closes_when_the_next_action_succeeds(studio, browser, dcgan_models):
    from tests.conftest import copy_dcgan

    _, url, config = studio
    copy_dcgan(dcgan_models, config.models_dir)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url + "?lang=en", wait_until="load")
    page.get_by_role("tab", name="Face synthesis").click()
    errors = page.locator('[data-testid="toast-body"].error')
    page.get_by_role("button", name="Re-roll this tile").click()  # nothing to re-roll yet: an error
    expect(errors).to_contain_text("click one first")
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_text("Seeds used:")).to_be_visible(timeout=120000)
    expect(errors).to_have_count(0, timeout=2000)  # closed on success, not after its own ten seconds
    page.close()


@pytest.mark.parametrize("lang,tab,step,reason", [
    ("en", "My digital twin", "4. Animate", "put it in models/twin/musetalk/"),
    ("zh", "我的数字分身", "4. 生成动画", "请放入 models/twin/musetalk/"),
])
def test_the_engine_list_greys_an_engine_that_is_not_installed(studio, browser, lang, tab, step, reason):
    """No MuseTalk weights in this studio's models/: the Engine list shows musetalk greyed, with the
    reason in the page's language; classic, which runs, is not greyed."""
    _, url, _ = studio
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{url}?lang={lang}", wait_until="load")
    page.get_by_role("tab", name=tab).wait_for(timeout=60000)
    page.get_by_role("tab", name=tab).click()
    page.get_by_role("tab", name=step).click()
    page.locator("#twin-engine input").click()
    options = page.locator("#twin-engine [role=option]")
    expect(options.filter(has_text="musetalk")).to_have_count(1)
    musetalk = options.filter(has_text="musetalk").first
    classic = options.filter(has_text="classic").first
    expect(musetalk).to_contain_text(reason)  # waits for the tab's refresh in the page's language
    assert float(musetalk.evaluate("e => getComputedStyle(e).opacity")) < 0.7
    assert float(classic.evaluate("e => getComputedStyle(e).opacity")) == 1.0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"twin-engines-{lang}.png"))
    page.close()
