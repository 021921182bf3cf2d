"""The ``siautil`` command line."""

from __future__ import annotations

import argparse
import sys


def _book(args: argparse.Namespace) -> int:
    from . import book

    try:
        book.build(args.chapter or None, book.parse_parameters(args.parameter or []),
                   html=not args.no_html)
    except book.ChapterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siautil", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("book", help="execute the chapters with papermill and build the HTML book")
    p.add_argument("--chapter", action="append", metavar="NAME",
                   help="execute only this chapter (repeatable); the others keep their last run")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="override a chapter parameter (value parsed as YAML), as papermill's -p")
    p.add_argument("--no-html", action="store_true", help="execute only; skip the Jupyter Book build")
    p.set_defaults(func=_book)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
