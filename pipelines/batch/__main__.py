"""python -m pipelines.batch jobs.csv --out DIR [--workers N | --ray | --ray-address ADDR]"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.errors import UserError
from .plan import RenderOptions
from .run import LOCAL_RAY, BatchConfig, RowResult, run_batch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.batch",
        description="Make one talking-head video per row of a CSV/XLSX (columns: photo, script or audio, voice, "
                    "language, subtitles, name). Running it declares that you have the right to animate every "
                    "face in the spreadsheet; each video carries a visible 'AI-generated' label. Rows already "
                    "rendered with the same inputs are skipped, so running it again continues a stopped batch.")
    p.add_argument("spreadsheet", type=Path, help="a .csv or .xlsx file; photo/audio paths are relative to its folder")
    p.add_argument("--out", type=Path, required=True, help="folder for the videos, summary.csv and results.zip")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core; 0 = in this process)")
    ray = p.add_mutually_exclusive_group()
    ray.add_argument("--ray", action="store_true", help="start a local Ray instance and run the rows on it")
    ray.add_argument("--ray-address", help="run on a Ray cluster: 'auto' (this node is part of it) or ray://HOST:10001")
    p.add_argument("--shared-folder", action="store_true",
                   help="Ray: the spreadsheet's files and --out are at the same paths on every node (else bytes travel)")
    p.add_argument("--input-folder", type=Path, action="append", default=[],
                   help="another folder photos and recordings may come from (repeatable)")
    p.add_argument("--encoding", help="the CSV's text encoding (default: detect UTF-8/UTF-16/GB18030)")
    p.add_argument("--size", choices=("face", "photo"), default="face", help="512 px face crop, or the photo's size")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--no-zip", action="store_true", help="do not zip the results")
    p.add_argument("--language", choices=("en", "zh"), default="en", help="language of the messages")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = BatchConfig(args.spreadsheet, args.out, workers=args.workers,
                         ray_address=LOCAL_RAY if args.ray else args.ray_address, shared_folder=args.shared_folder,
                         input_folders=tuple(args.input_folder), encoding=args.encoding,
                         options=RenderOptions(output_size=args.size, fps=args.fps), make_zip=not args.no_zip,
                         language=args.language)

    def on_row(result: RowResult) -> None:
        detail = result.output.name if result.output else result.error
        print(f"row {result.row} {result.name}: {result.status} {detail}", flush=True)

    try:
        result = run_batch(config, on_row=on_row)
    except UserError as exc:
        print(f"error: {exc.text(args.language)}", file=sys.stderr)
        return 2
    for note in result.notices:
        print(f"note: {note.text(args.language)}", file=sys.stderr)
    print(f"{result.done} done, {result.skipped} skipped, {result.failed} failed of {result.total_rows} rows "
          f"in {result.seconds:.1f} s; summary: {result.summary_path}"
          + (f"; zip: {result.zip_path}" if result.zip_path else ""))
    return 1 if result.failed or result.stopped else 0


if __name__ == "__main__":
    sys.exit(main())
