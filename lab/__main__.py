"""python -m lab up|down|status|ssh: the board lab (see docs/lab.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .host import LabError
from .lab import down, status, up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="A lab of systemd boards on this host.")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="build the image if needed, boot the boards, write .lab/inventory.ini")
    start.add_argument("--boards", type=int, default=int(os.environ.get("LAB_BOARDS", "3")))
    commands.add_parser("down", help="stop the boards and remove everything the lab made")
    commands.add_parser("status", help="list the boards")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            began = time.monotonic()
            lab = up(args.boards)
            print(f"lab: {len(lab.boards)} boards up in {time.monotonic() - began:.0f} s: "
                  + ", ".join(f"{b.name} {b.address}" for b in lab.boards))
            print(f"lab: inventory {lab.inventory}; ssh -F {lab.ssh_config} board-1")
        elif args.command == "down":
            down()
            print("lab: down")
        else:
            print("\n".join(status()))
    except LabError as err:
        print(f"lab: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
