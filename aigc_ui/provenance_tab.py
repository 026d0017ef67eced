"""Check a file tab: is this image, video or sound marked as made by the studio? Reads its Content
Credentials (valid, tampered, invalid or absent), looks for the studio's invisible watermark, and shows
the generation parameters stored with it. Wires widgets to ``pipelines.provenance.check_file``.

It never says a file is "not AI": a missing mark proves nothing, and the report says so.
API: ``/check_provenance(file)`` -> the checker's JSON object.
"""
from __future__ import annotations

import gradio as gr

from pipelines.core.errors import UserError
from pipelines.provenance import check_file

from .common import StudioContext, TabHandles, bind, clear_errors_on_success, friendly_errors, language_of
from .i18n import add_strings, t

add_strings(
    en={
        "tab.provenance": "Check a file",
        "provenance.intro": "Check whether an image, video or sound was made here and marked as AI-generated: "
                            "its Content Credentials (C2PA), the studio's invisible watermark (it survives "
                            "screenshots, resizing and re-encoding) and the parameters stored with it.",
        "provenance.file": "File to check (PNG, JPEG, MP4, WAV, MP3)",
        "provenance.check": "Check",
        "provenance.report": "Report",
        "provenance.details": "The checker's answer (JSON)",
    },
    zh={
        "tab.provenance": "检查文件",
        "provenance.intro": "检查一张图片、一段视频或音频是否由本工作室生成并标记为 AI 生成：读取其内容凭证（C2PA）、"
                            "本工作室的隐形水印（截图、缩放和重新编码后仍可识别）以及文件中保存的生成参数。",
        "provenance.file": "要检查的文件（PNG、JPEG、MP4、WAV、MP3）",
        "provenance.check": "检查",
        "provenance.report": "报告",
        "provenance.details": "检查结果（JSON）",
    },
)


@friendly_errors
def check_provenance(ctx: StudioContext, file: str | None, request: gr.Request = None):
    """The report in the user's language and the checker's JSON object (the API returns both)."""
    if not file:
        raise UserError("Choose a file to check.", zh="请选择要检查的文件。")
    report = check_file(file)
    lines = report.summary(language_of(request, ctx.config.language)).splitlines()
    return "\n".join(f"- {line}" for line in lines), report.to_json()


def build_tab(ctx: StudioContext) -> TabHandles:
    gr.Markdown(t("provenance.intro"))
    with gr.Row():
        with gr.Column():
            file = gr.File(label=t("provenance.file"), type="filepath",
                           file_types=[".png", ".jpg", ".jpeg", ".mp4", ".wav", ".mp3"])
            check = gr.Button(t("provenance.check"), variant="primary")
        with gr.Column():
            summary = gr.Markdown(label=t("provenance.report"))
            details = gr.JSON(label=t("provenance.details"))
    checked = check.click(bind(check_provenance, ctx), file, [summary, details], api_name="check_provenance",
                          **ctx.concurrency("image"))
    clear_errors_on_success(checked)
    return TabHandles()
