"""Text generation tab: presets, a prompt, a model and its settings -> text streamed token by token.

Only wiring: the work is pipelines.text.generation (stream_text, save_text, twin_script_prompt).
API: /generate_text (prompt, model, max_new_tokens, temperature, top_p, seed) -> text.
The handlers are the top-level functions below; ``build_tab`` only lays out and wires.
"""
from __future__ import annotations

import gradio as gr

from pipelines.core.model_downloads import better_text_model_hint
from pipelines.text.generation import (PRESETS, TextStream, default_model, save_text, stream_text,
                                       twin_script_prompt)

from .common import (StudioContext, TabHandles, bind, cancellable, clear_errors_on_success, friendly_errors,
                     language_of, show_notices)
from .hosting import zero_gpu
from .i18n import add_strings, say, t

TAB = "text"

add_strings(
    en={
        "text.preset": "Preset",
        "text.preset_free": "Free writing",
        "text.preset_twin": "Script for my digital twin",
        "text.preset_story": "Continue a story",
        "text.preset_brainstorm": "Brainstorm",
        "text.persona": "Who is speaking (persona)",
        "text.persona_placeholder": "e.g. a cheerful science teacher",
        "text.topic": "Topic",
        "text.topic_placeholder": "e.g. why the sky is blue",
        "text.seconds": "Length of speech (seconds)",
        "text.script_language": "Script language",
        "text.system": "Instructions (system prompt, for chat models)",
        "text.prompt": "Prompt",
        "text.prompt_placeholder": "Ask for something, or start a text for the model to continue…",
        "text.max_new_tokens": "Max new tokens",
        "text.temperature": "Temperature (0 = always the most likely word)",
        "text.top_p": "Top-p",
        "text.top_k": "Top-k (0 = off)",
        "text.repetition_penalty": "Repetition penalty (1 = off)",
        "text.no_repeat_ngram": "No-repeat n-gram size (0 = off)",
        "text.num_sequences": "Number of texts",
        "text.advanced": "More settings",
        "text.output": "Text",
        "text.download": "Download (.txt, settings in .json beside it)",
        "text.use_as_script": "Use as twin script",
        "text.info": "Model **{model}** · seed **{seed}** · {tokens} tokens in {seconds:.1f} s ({rate:.1f} tokens/s)",
        "text.info_running": "Model **{model}** · seed **{seed}** · writing… {tokens} tokens",
        "text.needs_download": "needs download",
        "text.twin_note": "The script is about {target} {unit} (2.5 words/s in English, 4 characters/s in Chinese).",
        "text.words": "words",
        "text.characters": "characters",
    },
    zh={
        "text.preset": "预设",
        "text.preset_free": "自由写作",
        "text.preset_twin": "数字分身的口播稿",
        "text.preset_story": "续写故事",
        "text.preset_brainstorm": "头脑风暴",
        "text.persona": "说话人（人设）",
        "text.persona_placeholder": "例如：一位开朗的科学老师",
        "text.topic": "主题",
        "text.topic_placeholder": "例如：天空为什么是蓝色的",
        "text.seconds": "口播时长（秒）",
        "text.script_language": "脚本语言",
        "text.system": "指令（系统提示，用于对话模型）",
        "text.prompt": "提示词",
        "text.prompt_placeholder": "提出要求，或写一段开头让模型续写……",
        "text.max_new_tokens": "最大新 token 数",
        "text.temperature": "温度（0 = 总是选最可能的词）",
        "text.top_p": "Top-p",
        "text.top_k": "Top-k（0 = 关闭）",
        "text.repetition_penalty": "重复惩罚（1 = 关闭）",
        "text.no_repeat_ngram": "禁止重复 n-gram 长度（0 = 关闭）",
        "text.num_sequences": "生成条数",
        "text.advanced": "更多设置",
        "text.output": "文本",
        "text.download": "下载（.txt，参数保存在旁边的 .json 中）",
        "text.use_as_script": "用作分身脚本",
        "text.info": "模型 **{model}** · 种子 **{seed}** · {tokens} 个 token，用时 {seconds:.1f} 秒（每秒 {rate:.1f} 个）",
        "text.info_running": "模型 **{model}** · 种子 **{seed}** · 正在生成……{tokens} 个 token",
        "text.needs_download": "需要下载",
        "text.twin_note": "脚本约 {target} {unit}（英文每秒 2.5 个词，中文每秒 4 个字）。",
        "text.words": "个词",
        "text.characters": "个字",
    },
)


def model_choices(ctx: StudioContext, lang: str = "en") -> list[tuple[str, str]]:
    """Runnable models first; the others stay listed with why not (choosing one explains how to install it)."""
    rows = ctx.catalog.available("text", check_network=False)
    ready = [(s.name, s.name) for s, a in rows if a.ok]
    missing = [(f"{s.name} ({a.reason_zh or a.reason if lang == 'zh' else a.reason})", s.name)
               for s, a in rows if not a.ok]
    return ready + missing


def joined(texts: list[str]) -> str:
    if len(texts) <= 1:
        return texts[0] if texts else ""
    return "\n\n".join(f"--- {i + 1} ---\n{text}" for i, text in enumerate(texts))


def info_text(stream: TextStream, lang: str, done: bool) -> str:
    values = dict(model=stream.spec.name, seed=stream.sampling.seed, tokens=stream.new_tokens)
    if done:
        line = say("text.info", lang, seconds=stream.seconds,
                   rate=stream.new_tokens / stream.seconds if stream.seconds else 0.0, **values)
    else:
        line = say("text.info_running", lang, **values)
    return line


# ---------------------------------------------------------------- handlers
def fill_twin_preset(ctx: StudioContext, persona: str, topic: str, seconds: float, script_language: str,
                     request: gr.Request):
    """The twin-script preset: system text, prompt and token budget for a script of that length."""
    lang = language_of(request, ctx.config.language)
    ask = twin_script_prompt(persona, topic or "…", seconds, script_language)
    target = round(seconds * (4 if script_language == "zh" else 2.5))
    unit = say("text.characters" if script_language == "zh" else "text.words", lang)
    return ask["system"], ask["prompt"], ask["max_new_tokens"], say("text.twin_note", lang, target=target, unit=unit)


def choose_preset(ctx: StudioContext, name: str, persona: str, topic: str, seconds: float, script_language: str,
                  request: gr.Request):
    """A preset fills the boxes; the twin preset also shows persona, topic, length and "Use as twin script"."""
    if name == "twin":
        return (gr.Group(visible=True), gr.Button(visible=True),
                *fill_twin_preset(ctx, persona, topic, seconds, script_language, request))
    chosen = PRESETS.get(name, {"system": "", "prompt": gr.skip()})
    return gr.Group(visible=False), gr.Button(visible=False), chosen["system"], chosen["prompt"], gr.skip(), ""


@friendly_errors
def generate_text_stream(ctx: StudioContext, system, prompt, model, max_new_tokens, temperature, top_p, top_k,
                         repetition_penalty, no_repeat_ngram_size, num_return_sequences, seed, request: gr.Request):
    """The page's Generate: yields (text so far, info line, saved file at the end)."""
    lang = language_of(request, ctx.config.language)
    with ctx.jobs.running(request, TAB) as stop:
        stream = stream_text(prompt, model=model or None, system=system, max_new_tokens=int(max_new_tokens),
                             temperature=float(temperature), top_p=float(top_p), top_k=int(top_k),
                             repetition_penalty=float(repetition_penalty),
                             no_repeat_ngram_size=int(no_repeat_ngram_size),
                             num_return_sequences=int(num_return_sequences), seed=seed,
                             runtime=ctx.runtime, stop=stop)
        yield "", info_text(stream, lang, done=False), None
        shown = 0  # notices appear while the stream runs (a trimmed prompt...): show each once, at once
        for _ in stream:
            show_notices(stream.notices[shown:], lang)
            shown = len(stream.notices)
            yield joined(stream.texts), info_text(stream, lang, done=False), gr.skip()
        result = stream.result()
        show_notices(result.notices[shown:], lang)
    if stop.discard:  # cancelled (the caller is gone): nothing is kept
        return
    path = save_text(result, ctx.runtime_for(request).outputs_dir)  # kept even when stopped: it is what was made
    if result.stopped:
        gr.Info(say("common.stopped", lang))
    yield joined(result.texts), info_text(stream, lang, done=True), str(path)


def stop_writing(ctx: StudioContext, request: gr.Request) -> None:
    ctx.jobs.stop(request, TAB)  # generation ends at its next token and keeps what it wrote


@friendly_errors
def generate_text(ctx: StudioContext, prompt: str, model: str = "", max_new_tokens: int = 256,
                  temperature: float = 0.7, top_p: float = 0.9, seed: int = -1,
                  request: gr.Request = None) -> str:  # gr.api reads the reply's type from here
    """Write text with a language model; the reply streams (use Client.submit to read it as it comes)."""
    with ctx.jobs.running(request, TAB) as stop:
        stream = stream_text(prompt, model=model or None, max_new_tokens=int(max_new_tokens),
                             temperature=float(temperature), top_p=float(top_p), seed=seed,
                             runtime=ctx.runtime, stop=stop)
        for _ in stream:
            yield stream.texts[0]
        yield stream.result().text


def model_hint(ctx: StudioContext, model: str | None, request: gr.Request) -> str:
    """A tip while the tiny bundled model is in use: a better one to download (or pick, once downloaded)."""
    hint = better_text_model_hint(ctx.runtime, model or None)
    return f"💡 {hint.text(language_of(request, ctx.config.language))}" if hint else ""


def refresh_models(ctx: StudioContext, model: str | None, request: gr.Request):
    """Models dropped into models/text/ (or downloaded in the Models tab) appear when the tab is opened."""
    lang = language_of(request, ctx.config.language)
    return gr.Dropdown(choices=model_choices(ctx, lang)), model_hint(ctx, model, request)


def on_load(ctx: StudioContext, model: str | None, request: gr.Request):
    """When the page loads: the model list in the page's language; scripts are written in it by default."""
    lang = language_of(request, ctx.config.language)
    return (gr.Dropdown(choices=model_choices(ctx, lang)), ("zh" if lang == "zh" else "en"),
            model_hint(ctx, model, request))


# ---------------------------------------------------------------- layout and wiring
def build_tab(ctx: StudioContext) -> TabHandles:
    try:
        default = default_model(ctx.runtime)
    except Exception:  # noqa: BLE001 - no runnable model: the list still shows how to get one
        default = None
    with gr.Row():
        with gr.Column(scale=2):
            preset = gr.Radio([(t("text.preset_free"), "free"), (t("text.preset_twin"), "twin"),
                               (t("text.preset_story"), "story"), (t("text.preset_brainstorm"), "brainstorm")],
                              value="free", label=t("text.preset"))
            with gr.Group(visible=False) as twin_box:
                persona = gr.Textbox(label=t("text.persona"), placeholder=t("text.persona_placeholder"))
                topic = gr.Textbox(label=t("text.topic"), placeholder=t("text.topic_placeholder"))
                with gr.Row():
                    seconds = gr.Slider(5, 120, value=20, step=1, label=t("text.seconds"))
                    script_language = gr.Radio([("English", "en"), ("中文", "zh")], value="en",
                                               label=t("text.script_language"))
                twin_note = gr.Markdown()
            system = gr.Textbox(label=t("text.system"), lines=2)
            prompt = gr.Textbox(label=t("text.prompt"), lines=5, placeholder=t("text.prompt_placeholder"))
            model = gr.Dropdown(model_choices(ctx), value=default, label=t("common.model"))
            hint = gr.Markdown(elem_classes=["notice"])
            max_new_tokens = gr.Slider(1, 2048, value=256, step=1, label=t("text.max_new_tokens"))
            temperature = gr.Slider(0, 2, value=0.7, step=0.05, label=t("text.temperature"))
            top_p = gr.Slider(0.05, 1, value=0.9, step=0.05, label=t("text.top_p"))
            seed = gr.Number(-1, precision=0, label=t("common.seed"))
            with gr.Accordion(t("text.advanced"), open=False):
                top_k = gr.Slider(0, 200, value=40, step=1, label=t("text.top_k"))
                repetition_penalty = gr.Slider(0.5, 2, value=1.0, step=0.05, label=t("text.repetition_penalty"))
                no_repeat_ngram = gr.Slider(0, 10, value=0, step=1, label=t("text.no_repeat_ngram"))
                num_sequences = gr.Slider(1, 8, value=1, step=1, label=t("text.num_sequences"))
            with gr.Row():
                generate = gr.Button(t("common.generate"), variant="primary")
                stop_button = gr.Button(t("common.stop"), variant="stop")
        with gr.Column(scale=3):
            output = gr.Textbox(label=t("text.output"), lines=16, buttons=["copy"], elem_id="text-output")
            info = gr.Markdown()
            download = gr.File(label=t("text.download"), interactive=False)
            send_script = gr.Button(t("text.use_as_script"), visible=False)

    private = dict(queue=False, api_visibility="private")
    preset_inputs = [preset, persona, topic, seconds, script_language]
    twin_outputs = [system, prompt, max_new_tokens, twin_note]
    preset.change(bind(choose_preset, ctx), preset_inputs, [twin_box, send_script] + twin_outputs, **private)
    gr.on([persona.change, topic.change, seconds.change, script_language.change], bind(fill_twin_preset, ctx),
          preset_inputs[1:], twin_outputs, **private)
    # the page streams with every setting; the API below has the exact parameters
    generated = generate.click(cancellable(zero_gpu(120)(bind(generate_text_stream, ctx))),
                   [system, prompt, model, max_new_tokens, temperature, top_p, top_k, repetition_penalty,
                    no_repeat_ngram, num_sequences, seed], [output, info, download],
                   api_visibility="private", show_progress="minimal", show_progress_on=output, **ctx.concurrency("text"))
    clear_errors_on_success(generated)
    stop_button.click(bind(stop_writing, ctx), None, None, **private)
    model.change(bind(model_hint, ctx), model, hint, **private)
    gr.api(cancellable(zero_gpu(120)(bind(generate_text, ctx))), api_name="generate_text", **ctx.concurrency("text"))

    return TabHandles(script_source=output, send_script=send_script,
                      on_open=(bind(refresh_models, ctx), [model], [model, hint]),
                      on_load=(bind(on_load, ctx), [model], [model, script_language, hint]))
