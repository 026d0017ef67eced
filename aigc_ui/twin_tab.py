"""My digital twin tab (placeholder until its pipeline lands): shows its controls and says it is not available."""
from __future__ import annotations

import gradio as gr

from .common import StudioContext, TabHandles, not_available_notice
from .i18n import t


def build_tab(ctx: StudioContext) -> TabHandles:
    not_available_notice()
    photo = gr.Image(label="Photo", type="filepath")
    script = gr.Textbox(label="Script", lines=4)
    audio = gr.Audio(label="Voice recording", type="filepath")
    gr.Button(t("common.generate"), variant="primary", interactive=False)
    return TabHandles(photo_target=photo, audio_target=audio, script_target=script)
