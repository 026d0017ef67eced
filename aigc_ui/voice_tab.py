"""Voice synthesis tab (placeholder until its pipeline lands): shows its controls and says it is not available."""
from __future__ import annotations

import gradio as gr

from .common import StudioContext, TabHandles, not_available_notice
from .i18n import t


def build_tab(ctx: StudioContext) -> TabHandles:
    not_available_notice()
    gr.Textbox(label="Text", lines=4)
    gr.Dropdown(label=t("common.model"), choices=[s.name for s in ctx.catalog.models("voice")])
    gr.Button(t("common.generate"), variant="primary", interactive=False)
    return TabHandles()
