"""``teleop-app doctor [--json] [--rig RIG] [--dataset DIR]``: one line per check, exit 1 when the rig cannot run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from teleop_app.cli.errors import fail


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check that this machine can run the rig: libraries, permissions, disk, timing")
    p.add_argument("--rig", default=None, help="rig TOML file or built-in rig name (default: sim_so101)")
    p.add_argument("--dataset", default=None, help="episode folder to check (default: ~/teleop-data/demos)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")


def run(args: argparse.Namespace) -> int:
    from drivers.registry import ConfigError
    from teleop_app import doctor
    from teleop_app.config import load_rig
    from teleop_app.doctor.result import FAIL, OK, WARN

    try:
        config = load_rig(args.rig)
    except ConfigError as exc:
        return fail(exc)
    dataset = Path(args.dataset) if args.dataset else doctor.DEFAULT_DATASET
    checks = doctor.run(config, dataset)
    can_run = doctor.rig_can_run(checks)
    if args.json:
        print(json.dumps({"rig": config.name, "rig_source": config.source, "dataset": str(dataset),
                          "can_run": can_run, "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        marks = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL"}
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{marks[c.status]}  {c.name:<{width}}  {c.detail}" + (f"  -> fix: {c.fix}" if c.fix else ""))
        failed = sum(c.status == FAIL for c in checks)
        print(f"rig {config.name} ({config.source}): " + ("can run" if can_run else
              f"cannot run, {failed} check{'s' if failed > 1 else ''} failed"))
    return 0 if can_run else 1
