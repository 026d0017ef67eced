"""UI text in English and Simplified Chinese.

Labels use ``t("key")`` (a gr.I18n key resolved in the browser; see language.py for how the page's
language is chosen: ?lang=, the --language default, or the browser's). Messages made on the server (warnings, errors) use
``say("key", language)`` with the language of the request.

Each tab module registers its own strings with ``add_strings(en={...}, zh={...})`` at import time,
so translations sit next to the widgets that use them.
"""
from __future__ import annotations

import gradio as gr

_EN: dict[str, str] = {}
_ZH: dict[str, str] = {}


def add_strings(en: dict[str, str], zh: dict[str, str]) -> None:
    missing = set(en) ^ set(zh)
    if missing:
        raise ValueError(f"translations missing for: {sorted(missing)}")
    _EN.update(en)
    _ZH.update(zh)


def t(key: str):
    """A translatable label for a component (resolved in the browser)."""
    if key not in _EN:
        raise KeyError(f"no UI string {key!r}")
    return gr.I18n(en=_EN, zh=_ZH)(key)


def say(key: str, language: str = "en", **values) -> str:
    """A server-made message in the user's language, with {placeholders} filled in."""
    table = _ZH if language.startswith("zh") else _EN
    return table.get(key, _EN.get(key, key)).format(**values)


# The pipelines' progress texts (short English words, maybe with counts) as people read them.
PROGRESS_TEXTS: tuple[tuple[str, str, str], ...] = (  # (pattern, English, Chinese)
    (r"photo", "Reading the photo", "读取照片"),
    (r"face", "Finding the face", "查找人脸"),
    (r"voice", "Speaking the script", "合成语音"),
    (r"frame (\d+)/(\d+)", r"Frame \1 of \2", r"第 \1/\2 帧"),
    (r"frames", "Making the frames", "生成帧"),
    (r"(\d+)/(\d+) faces", r"\1 of \2 faces", r"人脸 \1/\2"),
    (r"face (\d+)/(\d+), step (\d+)/(\d+)", r"Face \1 of \2, step \3 of \4", r"人脸 \1/\2，第 \3/\4 步"),
    (r"image (\d+)/(\d+) · step (\d+)/(\d+)", r"Image \1 of \2, step \3 of \4", r"图片 \1/\2，第 \3/\4 步"),
    (r"loading model", "Loading the model", "加载模型"),
    (r"writing", "Writing", "写作中"),
    (r"(\d+)/(\d+)", r"Speaking \1 of \2", r"朗读 \1/\2"),
    (r"done", "Done", "完成"),
)


def progress_text(text: str, language: str = "en") -> str:
    """A pipeline's progress text in the user's language; texts not known here are shown as they are."""
    import re

    for pattern, en, zh in PROGRESS_TEXTS:
        match = re.fullmatch(pattern, text or "")
        if match:
            return match.expand(zh if language.startswith("zh") else en)
    return text


def translations() -> gr.I18n:
    """Every registered string, for ``launch(i18n=...)``. zh-CN/zh-TW browsers get the zh table."""
    return gr.I18n(en=dict(_EN), zh=dict(_ZH), **{"zh-CN": dict(_ZH), "zh-Hans": dict(_ZH)})


def all_strings() -> tuple[dict[str, str], dict[str, str]]:
    return dict(_EN), dict(_ZH)


add_strings(
    en={
        "app.title": "## AIGC Digital-Twin Studio",
        "app.subtitle": "Write, draw, speak and animate your own digital twin, offline on your own computer.",
        "tab.text": "Text generation",
        "tab.face": "Face synthesis",
        "tab.image": "Text-to-image",
        "tab.voice": "Voice synthesis",
        "tab.twin": "My digital twin",
        "tab.models": "Models",
        "common.generate": "Generate",
        "common.stop": "Stop",
        "common.model": "Model",
        "common.seed": "Seed (-1 = random)",
        "common.send_to_twin": "Use as twin photo",
        "common.not_available": "Not available yet: this tab's engine has not been installed in this build. Nothing here is generated.",
        "common.stopped": "Stopped.",
        "common.error_unexpected": "Something went wrong: {error}. The studio is still running; please try again.",
        "common.busy": "Working…",
        "common.provenance": "Mark as AI-generated: invisible watermark + Content Credentials",
        "common.provenance_info": "On by default. Platforms and the Check-a-file tab can then tell the file is AI-generated, even after a screenshot or re-encoding.",
    },
    zh={
        "app.title": "## AIGC 数字分身工作室",
        "app.subtitle": "写作、绘画、语音，并让你自己的数字分身动起来——在你自己的电脑上离线完成。",
        "tab.text": "文本生成",
        "tab.face": "人脸合成",
        "tab.image": "文生图",
        "tab.voice": "语音合成",
        "tab.twin": "我的数字分身",
        "tab.models": "模型",
        "common.generate": "生成",
        "common.stop": "停止",
        "common.model": "模型",
        "common.seed": "随机种子（-1 = 随机）",
        "common.send_to_twin": "用作分身照片",
        "common.not_available": "暂不可用：此版本尚未安装该页的引擎。这里不会生成任何内容。",
        "common.stopped": "已停止。",
        "common.error_unexpected": "出错了：{error}。工作室仍在运行，请重试。",
        "common.busy": "处理中……",
        "common.provenance": "标记为 AI 生成：隐形水印 + 内容凭证",
        "common.provenance_info": "默认开启。各平台和“检查文件”页可据此识别文件为 AI 生成，即使被截图或重新编码。",
    },
)
