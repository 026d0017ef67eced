"""AppConfig: every setting the studio reads, from command-line flags or environment variables.

Flags win over environment variables (AIGC_HOST, AIGC_PORT, ...), which win over defaults.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS_DIR = REPO_ROOT / "assets"


@dataclass
class AppConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: tuple[str, str] | list[tuple[str, str]] | None = None  # one user:password, or several
    models_dir: Path = field(default_factory=lambda: REPO_ROOT / "models")
    outputs_dir: Path = field(default_factory=lambda: REPO_ROOT / "outputs")
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    language: str = "auto"  # language of server messages when the browser does not say: auto (=en), en, zh
    memory_budget_gb: float | None = None  # model cache budget; None = from free RAM / VRAM
    max_upload_mb: int = 200
    heavy_concurrency: int = 1  # old single-queue setting, kept for callers; the per-kind limits below replace it
    # How many jobs of each kind run at once (each kind has its own queue); None = sized to this machine
    max_videos: int | None = None
    max_text: int | None = None
    max_voice: int | None = None
    max_images: int | None = None
    max_faces: int | None = None
    max_batches: int | None = None
    shared_gallery: bool = False  # everyone sees, loads and deletes everyone's profiles and videos
    anonymous_ttl_hours: float = 24.0  # outputs of sessions without a profile key are deleted after this
    follow_outside_symlinks: bool = False  # links in models/ that lead outside it are skipped unless set
    allow_pickle: bool = False  # pickled .ckpt image models can run code: refused unless set
    admin_users: tuple[str, ...] = ()  # --auth users who may unload models (loopback always may)

    def __post_init__(self):
        self.models_dir = Path(self.models_dir).expanduser().resolve()
        self.outputs_dir = Path(self.outputs_dir).expanduser().resolve()
        if self.language not in ("auto", "en", "zh"):
            raise ValueError(f"language must be 'auto', 'en' or 'zh', not {self.language!r}")

    @property
    def credentials(self) -> list[tuple[str, str]]:
        """Every (user, password) of ``--auth``; empty when the studio is open."""
        if not self.auth:
            return []
        return [tuple(self.auth)] if isinstance(self.auth[0], str) else [tuple(pair) for pair in self.auth]

    def ensure_dirs(self) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.outputs_dir.mkdir(parents=True, exist_ok=True)


def _parse_auth(values: list[str] | str | None) -> tuple[str, str] | list[tuple[str, str]] | None:
    """``user:password`` (repeat the flag, or separate with commas in AIGC_AUTH, for several users)."""
    if isinstance(values, str):
        values = [values]
    pairs = []
    for value in (v.strip() for item in (values or []) for v in item.split(",")):
        if not value:
            continue
        user, sep, password = value.partition(":")
        if not sep or not user or not password:
            raise argparse.ArgumentTypeError("--auth must look like user:password")
        pairs.append((user, password))
    if not pairs:
        return None
    return pairs[0] if len(pairs) == 1 else pairs


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(description="AIGC Digital-Twin Studio")
    p.add_argument("--host", default=env("AIGC_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("AIGC_PORT", "7860")))
    p.add_argument("--share", action="store_true", default=env("AIGC_SHARE", "") in ("1", "true"),
                   help="ask Gradio for a public share link (needs internet)")
    p.add_argument("--auth", action="append", default=None,
                   help="user:password required to open the UI; repeat it to give each person their own login "
                        "(their things are kept under their user name). Env: AIGC_AUTH=user:pw[,user2:pw2]")
    p.add_argument("--admin-user", action="append", default=None,
                   help="an --auth user who may unload models from the Models tab (the studio's own computer "
                        "always may). Env: AIGC_ADMIN_USERS=name[,name2]")
    p.add_argument("--shared-gallery", action="store_true", default=_flag("AIGC_SHARED_GALLERY"),
                   help="one shared gallery: everyone sees, loads and deletes everyone's profiles, recordings and "
                        "videos (default: each person sees only their own)")
    p.add_argument("--anonymous-ttl-hours", type=float, default=float(env("AIGC_ANONYMOUS_TTL_HOURS", "24")),
                   help="delete what sessions without a profile key made after this many idle hours (0 = never)")
    p.add_argument("--follow-symlinks-outside-models", action="store_true",
                   default=_flag("AIGC_FOLLOW_SYMLINKS_OUTSIDE_MODELS"),
                   help="use links in the models folder that point outside it (default: skipped)")
    p.add_argument("--allow-pickle", action="store_true", default=_flag("AIGC_ALLOW_PICKLE"),
                   help="allow pickled .ckpt image models (they can run code when loaded)")
    p.add_argument("--models-dir", default=env("AIGC_MODELS_DIR", str(REPO_ROOT / "models")))
    p.add_argument("--outputs-dir", default=env("AIGC_OUTPUTS_DIR", str(REPO_ROOT / "outputs")))
    p.add_argument("--device", default=env("AIGC_DEVICE", "auto"),
                   help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    p.add_argument("--language", choices=["auto", "en", "zh"], default=env("AIGC_LANGUAGE", "auto"),
                   help="language of server messages when a browser sends none (the page follows the browser; users switch in Settings)")
    p.add_argument("--memory-budget-gb", type=float,
                   default=float(env("AIGC_MEMORY_BUDGET_GB")) if env("AIGC_MEMORY_BUDGET_GB") else None,
                   help="how much memory loaded models may take before the least recently used is unloaded")
    p.add_argument("--max-upload-mb", type=int, default=int(env("AIGC_MAX_UPLOAD_MB", "200")))
    for kind, what in (("videos", "twin videos rendered"), ("text", "text answers written"),
                       ("voice", "speeches synthesized"), ("images", "images generated"),
                       ("faces", "face batches generated"), ("batches", "spreadsheet batches run")):
        variable = f"AIGC_MAX_{kind.upper()}"
        p.add_argument(f"--max-{kind}", type=int, default=int(env(variable)) if env(variable) else None,
                       help=f"how many {what} at once, each kind in its own queue (default: sized to this machine)")
    return p


def parse_args(argv: list[str] | None = None) -> AppConfig:
    args = build_parser().parse_args(argv)
    env = os.environ.get
    try:
        auth = _parse_auth(args.auth if args.auth is not None else env("AIGC_AUTH"))
    except argparse.ArgumentTypeError as e:
        build_parser().error(str(e))
    admins = args.admin_user if args.admin_user is not None else (env("AIGC_ADMIN_USERS") or "").split(",")
    return AppConfig(host=args.host, port=args.port, share=args.share, auth=auth,
                     models_dir=Path(args.models_dir), outputs_dir=Path(args.outputs_dir),
                     device=args.device, language=args.language,
                     memory_budget_gb=args.memory_budget_gb, max_upload_mb=args.max_upload_mb,
                     max_videos=args.max_videos, max_text=args.max_text, max_voice=args.max_voice,
                     max_images=args.max_images, max_faces=args.max_faces, max_batches=args.max_batches,
                     shared_gallery=args.shared_gallery, anonymous_ttl_hours=args.anonymous_ttl_hours,
                     follow_outside_symlinks=args.follow_symlinks_outside_models, allow_pickle=args.allow_pickle,
                     admin_users=tuple(a.strip() for a in admins if a.strip()))
