"""The model manager's list: which catalog models download in one click, from which hub files, into
which folder of models/ (the layout each task's scanner in ``catalog.scan_models_dir`` expects), and
the Chinese text the Models tab shows for every catalog entry.

Keyed by catalog name. Sizes are what the hub listed when an entry was written; a download always
uses the hub's live listing (sizes and hashes) and says so if a listed file has gone.

    download_model("qwen2.5-0.5b-instruct-gguf", models_dir, on_progress=print)
    remove_model("qwen2.5-0.5b-instruct-gguf", models_dir)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .catalog import ModelSpec
from .downloads import (DownloadPlan, DownloadResult, HubFiles, LocalState, ProgressCallback, download,
                        free_disk_bytes, local_state, remove)
from .errors import UserError
from .jobs import StopToken
from .notices import Notice

if TYPE_CHECKING:
    from .catalog import Catalog
    from .runtime import Runtime

BUNDLED_TEXT_MODEL = "smollm2-135m-instruct"
BETTER_TEXT_MODELS = ("qwen2.5-0.5b-instruct-gguf", "qwen2.5-1.5b-instruct-gguf")

# Diffusers repos keep half-size fp16 copies beside the fp32 weights: we take those and give them the
# plain names, so the pipelines load them as usual (in fp32 on a CPU, fp16 on a GPU).
FP16_AS_DEFAULT = ((".fp16.", "."),)

PLANS: dict[str, DownloadPlan] = {plan.name: plan for plan in (
    # ---- text: one GGUF file in models/text/ (llama.cpp), or a transformers folder
    DownloadPlan("qwen2.5-0.5b-instruct-gguf", (
        HubFiles("Qwen/Qwen2.5-0.5B-Instruct-GGUF", ("qwen2.5-0.5b-instruct-q4_k_m.gguf",), "text",
                 required=("qwen2.5-0.5b-instruct-q4_k_m.gguf",)),),
        target="text/qwen2.5-0.5b-instruct-q4_k_m.gguf", size_mb=491),
    DownloadPlan("qwen2.5-1.5b-instruct-gguf", (
        HubFiles("Qwen/Qwen2.5-1.5B-Instruct-GGUF", ("qwen2.5-1.5b-instruct-q4_k_m.gguf",), "text",
                 required=("qwen2.5-1.5b-instruct-q4_k_m.gguf",)),),
        target="text/qwen2.5-1.5b-instruct-q4_k_m.gguf", size_mb=1120),
    DownloadPlan("qwen2.5-0.5b-instruct", (
        HubFiles("Qwen/Qwen2.5-0.5B-Instruct",
                 ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                  "tokenizer_config.json", "vocab.json", "merges.txt"), "text/qwen2.5-0.5b-instruct",
                 required=("config.json", "model.safetensors", "tokenizer.json")),),
        target="text/qwen2.5-0.5b-instruct", size_mb=990),
    DownloadPlan("gpt2", (
        HubFiles("openai-community/gpt2",
                 ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                  "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"), "text/gpt2",
                 required=("config.json", "model.safetensors")),),
        target="text/gpt2", size_mb=550),
    # ---- text to image: diffusers folders in models/image/
    DownloadPlan("sd-turbo", (
        HubFiles("stabilityai/sd-turbo",
                 ("model_index.json", "scheduler/scheduler_config.json", "tokenizer/*", "feature_extractor/*",
                  "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
                  "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
                  "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors"), "image/sd-turbo",
                 rename=FP16_AS_DEFAULT,
                 required=("model_index.json", "text_encoder/model.fp16.safetensors",
                           "unet/diffusion_pytorch_model.fp16.safetensors",
                           "vae/diffusion_pytorch_model.fp16.safetensors")),),
        target="image/sd-turbo", size_mb=2600),
    DownloadPlan("sdxl-turbo", (
        HubFiles("stabilityai/sdxl-turbo",
                 ("model_index.json", "scheduler/scheduler_config.json", "tokenizer/*", "tokenizer_2/*",
                  "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
                  "text_encoder_2/config.json", "text_encoder_2/model.fp16.safetensors",
                  "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
                  "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors"), "image/sdxl-turbo",
                 rename=FP16_AS_DEFAULT,
                 required=("model_index.json", "text_encoder/model.fp16.safetensors",
                           "text_encoder_2/model.fp16.safetensors",
                           "unet/diffusion_pytorch_model.fp16.safetensors",
                           "vae/diffusion_pytorch_model.fp16.safetensors")),),
        target="image/sdxl-turbo", size_mb=6940),
    # ---- faces: a diffusers DDPM folder in models/faces/
    DownloadPlan("ddpm-celebahq-256", (
        HubFiles("google/ddpm-celebahq-256",
                 ("model_index.json", "scheduler/scheduler_config.json", "unet/config.json",
                  "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
                 "faces/ddpm-celebahq-256",
                 required=("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.*")),),
        target="faces/ddpm-celebahq-256", size_mb=455),
    # ---- voices: Piper voices (NAME.onnx + NAME.onnx.json) and transformers folders in models/voices/
    DownloadPlan("zh_CN-huayan-medium", (
        HubFiles("rhasspy/piper-voices",
                 ("zh/zh_CN/huayan/medium/zh_CN-huayan-medium.onnx",
                  "zh/zh_CN/huayan/medium/zh_CN-huayan-medium.onnx.json"), "voices",
                 rename=(("zh/zh_CN/huayan/medium/", ""),),
                 required=("*.onnx", "*.onnx.json")),),
        target="voices/zh_CN-huayan-medium.onnx", size_mb=63),
    DownloadPlan("en_US-ljspeech-medium", (
        HubFiles("rhasspy/piper-voices",
                 ("en/en_US/ljspeech/medium/en_US-ljspeech-medium.onnx",
                  "en/en_US/ljspeech/medium/en_US-ljspeech-medium.onnx.json"), "voices",
                 rename=(("en/en_US/ljspeech/medium/", ""),),
                 required=("*.onnx", "*.onnx.json")),),
        target="voices/en_US-ljspeech-medium.onnx", size_mb=63),
    DownloadPlan("mms-tts-eng", (
        HubFiles("facebook/mms-tts-eng",
                 ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer_config.json", "vocab.json",
                  "special_tokens_map.json", "added_tokens.json"), "voices/mms-tts-eng",
                 required=("config.json", "vocab.json")),),
        target="voices/mms-tts-eng", size_mb=145),
    # ---- speech recognition: CTranslate2 Whisper folders in models/asr/ (faster-whisper)
    DownloadPlan("faster-whisper-base", (
        HubFiles("Systran/faster-whisper-base",
                 ("config.json", "model.bin", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"),
                 "asr/faster-whisper-base", required=("config.json", "model.bin", "tokenizer.json")),),
        target="asr/faster-whisper-base", size_mb=145),
    DownloadPlan("faster-whisper-small", (
        HubFiles("Systran/faster-whisper-small",
                 ("config.json", "model.bin", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"),
                 "asr/faster-whisper-small", required=("config.json", "model.bin", "tokenizer.json")),),
        target="asr/faster-whisper-small", size_mb=484),
    # ---- digital twin: the MuseTalk 1.5 bundle (three repos, one folder) for the neural engine
    DownloadPlan("musetalk", (
        HubFiles("TMElyralab/MuseTalk", ("musetalkV15/unet.pth", "musetalkV15/musetalk.json"), "twin/musetalk",
                 required=("musetalkV15/unet.pth", "musetalkV15/musetalk.json")),
        HubFiles("stabilityai/sd-vae-ft-mse",
                 ("config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
                 "twin/musetalk/sd-vae", required=("config.json", "diffusion_pytorch_model.*")),
        HubFiles("openai/whisper-tiny",
                 ("config.json", "model.safetensors", "pytorch_model.bin", "preprocessor_config.json"),
                 "twin/musetalk/whisper", required=("config.json", "preprocessor_config.json")),
    ), target="twin/musetalk", size_mb=3900),
)}

# Models the catalog does not list itself (yet): shown in the Models tab so they can be downloaded;
# once installed, the task's scanner finds them and they get these names and licences.
EXTRA_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("qwen2.5-1.5b-instruct-gguf", "text", "llama_cpp", "hub", "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
              "Apache-2.0", languages=("en", "zh"), size_mb=1120,
              description="Qwen2.5 1.5B Instruct, Q4_K_M GGUF: clearly better English and Chinese, still fine on a CPU",
              description_zh="通义千问 Qwen2.5 1.5B Instruct，Q4_K_M GGUF：中英文明显更好，CPU 上仍可流畅运行",
              options={"filename": "qwen2.5-1.5b-instruct-q4_k_m.gguf", "chat": True}),
    ModelSpec("zh_CN-huayan-medium", "voice", "piper", "hub", "rhasspy/piper-voices",
              "Piper voice (GPL-3.0 engine); dataset licence not stated", commercial_use=False,
              languages=("zh",), size_mb=63, description="Piper neural voice 'huayan' (Mandarin Chinese, female)",
              description_zh="Piper 神经语音“huayan”（普通话，女声）",
              licence_zh="Piper 语音（引擎 GPL-3.0）；数据集许可未注明"),
    ModelSpec("en_US-ljspeech-medium", "voice", "piper", "hub", "rhasspy/piper-voices",
              "Piper voice (GPL-3.0 engine); trained on LJ Speech (public domain)", languages=("en",), size_mb=63,
              description="Piper neural voice 'ljspeech' (US English, female)",
              description_zh="Piper 神经语音“ljspeech”（美式英语，女声）",
              licence_zh="Piper 语音（引擎 GPL-3.0）；使用 LJ Speech（公有领域）训练"),
)
_EXTRA_BY_NAME = {spec.name: spec for spec in EXTRA_SPECS}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


# ---------------------------------------------------------------------------------------- names
def find_plan(name: str, catalog: Catalog | None = None) -> DownloadPlan:
    """The download entry for a catalog name or the hub repo id of a catalog entry; clear errors otherwise."""
    text = (name or "").strip()
    if not text:
        raise UserError("Pick a model first.", zh="请先选择一个模型。")
    if ".." in text or not (_NAME.fullmatch(text) or _REPO_ID.fullmatch(text)):
        raise UserError(f"'{text[:80]}' is not a model name: use a name from the list "
                        "(`python -m pipelines.models list`) or a hub id such as Qwen/Qwen2.5-0.5B-Instruct-GGUF.",
                        zh=f"“{text[:80]}”不是模型名称：请使用列表中的名称（`python -m pipelines.models list`）"
                           "或 Qwen/Qwen2.5-0.5B-Instruct-GGUF 这样的模型中心 ID。")
    if text in PLANS:
        return PLANS[text]
    for plan in PLANS.values():
        if text.lower() == plan.repo_id.lower() and sum(p.repo_id == plan.repo_id for p in PLANS.values()) == 1:
            return plan
    hub_names = {s.source.lower(): s.name for s in (catalog.models() if catalog else ()) if s.source_kind == "hub"}
    if text.lower() in hub_names and hub_names[text.lower()] in PLANS:
        return PLANS[hub_names[text.lower()]]
    known = ", ".join(PLANS)
    if catalog is not None and any(text in (s.name, s.source) for s in catalog.models()):
        raise UserError(f"{text} is in the catalog but not offered for download here (it downloads by itself on "
                        f"first use when the hub can be reached). Downloadable: {known}.",
                        zh=f"{text} 在模型目录中，但这里不提供下载（联网时首次使用会自动下载）。可下载：{known}。")
    raise UserError(f"'{text}' is not in the list of downloadable models: {known}.",
                    zh=f"“{text}”不在可下载模型列表中：{known}。")


# ---------------------------------------------------------------------------------------- actions
def download_model(name: str, models_dir: Path, *, catalog: Catalog | None = None, token: str | None = None,
                   stop: StopToken | None = None, on_progress: ProgressCallback | None = None,
                   endpoint: str | None = None,
                   free_bytes: Callable[[Path], int] = free_disk_bytes) -> DownloadResult:
    """Download a model of the list into models/ (see ``pipelines.core.downloads.download``)."""
    return download(find_plan(name, catalog), Path(models_dir), token=token, stop=stop, on_progress=on_progress,
                    endpoint=endpoint, free_bytes=free_bytes)


def remove_model(name: str, models_dir: Path, catalog: Catalog | None = None) -> list[str]:
    return remove(find_plan(name, catalog), Path(models_dir))


# ---------------------------------------------------------------------------------------- listing
@dataclass(frozen=True)
class ModelEntry:
    """One row of the model manager: a catalog model (or one it can download), and its state here."""

    spec: ModelSpec
    plan: DownloadPlan | None  # None: not downloadable here
    state: LocalState | None  # None when there is no plan

    @property
    def installed(self) -> bool:
        return bool(self.state and self.state.installed)


TASK_ORDER = ("text", "image", "face", "voice", "asr", "twin")


def model_entries(catalog: Catalog) -> list[ModelEntry]:
    """Every catalog model and the downloadable ones the catalog does not list yet, grouped by task."""
    specs = catalog.models()
    names = {s.name for s in specs}
    specs += [s for s in EXTRA_SPECS if s.name not in names]
    specs.sort(key=lambda s: TASK_ORDER.index(s.task) if s.task in TASK_ORDER else len(TASK_ORDER))
    return [ModelEntry(s, PLANS.get(s.name),
                       local_state(PLANS[s.name], catalog.models_dir) if s.name in PLANS else None)
            for s in specs]


def with_downloaded_copies(builtin: list[ModelSpec], scanned: list[ModelSpec], models_dir: Path) -> list[ModelSpec]:
    """The catalog's list with each downloaded model in its entry's place: the entry keeps its name,
    licence and settings, and loads from models/ (backend and options as the scanner found it).

    Only entries that would otherwise come from the hub are replaced; a model whose task has no
    scanner here (yet) is left to that task's own code.
    """
    builtin, scanned = list(builtin), list(scanned)
    for name, plan in PLANS.items():
        target = plan.target_path(models_dir)
        if not target.exists():
            continue
        found = next((s for s in scanned if _same_path(s.source, target)), None)
        if found is None:
            continue
        index = next((i for i, s in enumerate(builtin) if s.name == name), None)
        base = builtin[index] if index is not None else _EXTRA_BY_NAME.get(name)
        if base is None or base.source_kind != "hub":
            continue
        merged = replace(base, source_kind="local", source=found.source, backend=found.backend,
                         size_mb=found.size_mb, options={**base.options, **found.options, "hub_id": base.source})
        if index is not None:
            builtin[index] = merged
            scanned.remove(found)
        else:
            scanned[scanned.index(found)] = merged
    return builtin + scanned


def _same_path(source: str, target: Path) -> bool:
    try:
        return Path(source).resolve() == target.resolve()
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------------------- text tab hint
def better_text_model_hint(runtime: Runtime, model: str | None = None) -> Notice | None:
    """A tip for the text tab while the bundled 135M model is in use (``model``: the one picked; None =
    the default): download a better one, or pick it when it is already here. None otherwise."""
    if (model or BUNDLED_TEXT_MODEL) != BUNDLED_TEXT_MODEL:
        return None
    models_dir = runtime.catalog.models_dir
    for name in BETTER_TEXT_MODELS:
        if PLANS[name].installed(models_dir):
            return Notice(f"{name} is downloaded: pick it in the Model list for better answers, in English and Chinese.",
                          f"{name} 已下载：在“模型”列表中选择它，中英文回答都会更好。", "info")
    small, large = PLANS[BETTER_TEXT_MODELS[0]], PLANS[BETTER_TEXT_MODELS[1]]
    return Notice(
        f"The bundled model is tiny (135M, English only) and often repeats itself. For better answers and "
        f"Chinese, download {small.name} ({small.size_mb:.0f} MB) or {large.name} ({large.size_mb / 1000:.1f} GB) "
        f"in the Models tab.",
        f"内置模型很小（1.35 亿参数，仅支持英语），常会重复。想要更好的回答和中文支持，请在“模型”页下载 "
        f"{small.name}（{small.size_mb:.0f} MB）或 {large.name}（{large.size_mb / 1000:.1f} GB）。", "info")
