"""python -m pipelines.provenance check FILE [--json] [--language zh]"""
from __future__ import annotations

import argparse
import json
import sys

from ..core.errors import UserError
from .checker import check_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.provenance",
                                     description="Check a file's Content Credentials, invisible watermark and "
                                                 "stored parameters. Finding no mark proves nothing.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="report what a file says about where it came from")
    check.add_argument("file")
    check.add_argument("--json", action="store_true", help="print one JSON object: c2pa, watermark, payload, parameters")
    check.add_argument("--language", default="en", choices=["en", "zh"])
    args = parser.parse_args(argv)
    try:
        report = check_file(args.file)
    except UserError as exc:
        print(f"error: {exc.text(args.language)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, default=str))
    else:
        print(report.summary(args.language))
    return 0


if __name__ == "__main__":
    sys.exit(main())
