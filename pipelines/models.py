"""The model manager from a terminal: list the catalog, download a model from the hub, remove it.

    python -m pipelines.models list
    python -m pipelines.models download qwen2.5-0.5b-instruct-gguf
    python -m pipelines.models download Qwen/Qwen2.5-0.5B-Instruct-GGUF --models-dir /data/models
    python -m pipelines.models remove qwen2.5-0.5b-instruct-gguf

NAME is a catalog name or the hub repo id of a catalog entry. HF_ENDPOINT picks a hub mirror; a gated
model takes ``--token`` (or HF_TOKEN), used for that download only. Ctrl+C cancels; whole files are
kept and the next download goes on from there.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .core.catalog import Catalog
from .core.downloads import DownloadProgress, human_size
from .core.errors import Stopped, UserError
from .core.jobs import StopToken
from .core.model_downloads import download_model, model_entries, remove_model


def _models_dir(value: str | None) -> Path:
    from .core.settings import REPO_ROOT

    return Path(value or os.environ.get("AIGC_MODELS_DIR") or REPO_ROOT / "models").expanduser().resolve()


def list_models(catalog: Catalog) -> str:
    rows = [("NAME", "TASK", "SIZE", "STATE", "LICENCE")]
    for entry in model_entries(catalog):
        spec = entry.spec
        if entry.state is None:
            state = {"hub": "on first use", "local": "in models/"}.get(spec.source_kind, "bundled")
        elif entry.state.installed:
            state = "downloaded" if entry.state.downloaded_here else "in models/"
        elif entry.state.partial_bytes:
            state = f"partly ({human_size(entry.state.partial_bytes)})"
        else:
            state = "download"
        size = human_size(spec.size_mb * 1e6) if spec.size_mb else "-"
        licence = spec.licence if spec.commercial_use else spec.licence_label
        rows.append((spec.name, spec.task, size, state, licence))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows)


class _Printer:
    """One updating line on a terminal; a line per 10 % when the output is a file or a pipe."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last_tenth = -1

    def __call__(self, p: DownloadProgress) -> None:
        if self.tty:
            print(f"\r{p.text():<60}", end="", file=sys.stderr, flush=True)
        elif p.phase != "downloading" or int(p.fraction * 10) > self.last_tenth:
            self.last_tenth = int(p.fraction * 10)
            print(p.text(), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.models", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", help="where models live (default: AIGC_MODELS_DIR or ./models)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every catalog model, and whether it is here")
    get = commands.add_parser("download", help="download a model from the hub into models/")
    get.add_argument("name", help="catalog name or hub repo id")
    get.add_argument("--token", default=None, help="access token for gated models (default: HF_TOKEN or your login)")
    get.add_argument("--models-dir", dest="models_dir_sub", help=argparse.SUPPRESS)
    drop = commands.add_parser("remove", help="delete a model the manager downloaded")
    drop.add_argument("name")
    drop.add_argument("--models-dir", dest="models_dir_sub", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    models_dir = _models_dir(getattr(args, "models_dir_sub", None) or args.models_dir)
    catalog = Catalog(models_dir)
    try:
        if args.command == "list":
            print(list_models(catalog))
        elif args.command == "download":
            stop = StopToken()
            try:
                result = download_model(args.name, models_dir, catalog=catalog, token=args.token, stop=stop,
                                        on_progress=_Printer())
            except KeyboardInterrupt:
                raise Stopped() from None
            print(file=sys.stderr)
            print(f"Downloaded {result.name} ({human_size(result.total_bytes)}) into "
                  f"models/{result.path.relative_to(models_dir).as_posix()} in {result.seconds:.0f} s.")
        else:
            for item in remove_model(args.name, models_dir, catalog):
                print(f"removed models/{item}")
    except Stopped:
        print("\nCancelled. Whole files are kept: download again to go on.", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"\nerror: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
