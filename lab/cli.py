"""Command line of the lab: ``python -m lab {engine,images,up,down,status,...}``."""

from __future__ import annotations

import argparse
import sys

from . import engine, images


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("engine", help="install/start the container engine and apt cache")
    pi = sub.add_parser("images", help="build the systemd base images")
    pi.add_argument("--rebuild", action="store_true")
    pi.add_argument("names", nargs="*")
    args = p.parse_args(argv)
    try:
        if args.cmd == "engine":
            engine.ensure_engine()
        elif args.cmd == "images":
            engine.ensure_engine()
            images.build_all(args.names or None, rebuild=args.rebuild)
    except engine.LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    return 0
