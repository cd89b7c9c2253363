"""``teleop-app compare``: human demos vs policy rollouts — success, speed metrics, ratios with CIs, and why.

The verdict (success rates first, durations on successes, causes within the
gap) is decided by :mod:`recordings.analysis.verdict`; this command prints it.

::

    teleop-app compare --human DEMOS --policy ROLLOUTS [--report r.html] [--json]
    teleop-app compare --by-source DATASET            # split one folder by who drove the ticks

``DIR_OR_GLOB`` is a dataset folder, one episode file, or a glob such as
``'runs/*/episode_*.h5'`` (quote it so the shell leaves it alone).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from teleop_app.cli.errors import fail
from teleop_app.cli.progress import Progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare human demos with policy rollouts: speed, idle, phases, and why",
                       description="Success rates and speed metrics of two sets of episodes (kept ranges, true "
                                   "tick times), the policy/human ratio of each with a bootstrap confidence interval, "
                                   "durations compared successes against successes, and a diagnosis of why the policy "
                                   "is slower or differs (docs/compare.md).")
    p.add_argument("--human", metavar="DIR_OR_GLOB", default=None, help="the human demos: folder, file or glob")
    p.add_argument("--policy", metavar="DIR_OR_GLOB", default=None, help="the policy rollouts: folder, file or glob")
    p.add_argument("--by-source", metavar="DIR", type=Path, default=None,
                   help="instead of --human/--policy: one dataset folder, split into mostly-human and "
                        "mostly-policy episodes by the source of their ticks")
    p.add_argument("--report", metavar="OUT.html", type=Path, default=None,
                   help="also write a self-contained HTML report (charts inline)")
    p.add_argument("--json", action="store_true", help="print the whole comparison as JSON instead of text")
    p.add_argument("--seed", type=int, default=None, help="bootstrap seed (default 0: the same numbers every run)")
    p.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default 2000)")


def run(args: argparse.Namespace) -> int:
    from recordings.analysis.compare import RESAMPLES, SEED, compare_by_source, compare_sets, resolve_set
    from recordings.reader import EpisodeError
    from recordings.analysis.report import write_report

    seed = SEED if args.seed is None else args.seed
    resamples = RESAMPLES if args.resamples is None else args.resamples
    progress = Progress("compare")
    try:
        if resamples < 100:
            raise ValueError("--resamples must be at least 100")
        if args.by_source is not None:
            if args.human or args.policy:
                raise ValueError("give either --by-source DIR or --human and --policy, not both")
            comparison = compare_by_source(args.by_source, seed=seed, resamples=resamples, progress=progress)
        else:
            if not (args.human and args.policy):
                raise ValueError("give --human DIR_OR_GLOB and --policy DIR_OR_GLOB (or --by-source DIR)")
            comparison = compare_sets(resolve_set(args.human), resolve_set(args.policy),
                                      labels=(str(args.human), str(args.policy)), seed=seed, resamples=resamples,
                                      progress=progress)
        report = write_report(comparison, args.report) if args.report is not None else None
    except (EpisodeError, ValueError, OSError) as exc:
        progress.close()
        return fail(exc)
    progress.close()
    if args.json:
        data = comparison.to_dict()
        if report is not None:
            data["report"] = str(report)
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(comparison.text())
        if report is not None:
            print(f"\nreport: {report}")
    return 0
