"""``teleop-app train``: train the built-in policy on a folder of episodes and write a ``.pt`` checkpoint.

Launched by ``torchrun`` it trains data-parallel (see :mod:`policies.builtin.distributed`);
only rank 0 prints and writes the checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from teleop_app.cli.errors import fail
from teleop_app.cli.progress import Progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    from policies.builtin.options import HEADS, TrainOptions

    d = TrainOptions()
    p = sub.add_parser(
        "train", help="train the built-in policy on a folder of episodes (CPU, minutes)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the built-in policy on a folder of episodes and write a .pt checkpoint.",
        epilog="Data-parallel (PyTorch DDP): launch the same command with torchrun; --batch-size is the total\n"
               "over all processes, rank 0 writes the checkpoint and the log.\n"
               "  one machine:  torchrun --nproc-per-node 2 -m teleop_app.cli train demos/ --out p.pt --threads 1\n"
               "  two machines: torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \\\n"
               "                  --rdzv-id job1 --rdzv-endpoint HOST0:29400 -m teleop_app.cli train demos/ \\\n"
               "                  --out p.pt --device cuda      (run on each machine; the data on each)")
    p.add_argument("dir", type=Path, help="dataset folder of episode files")
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"passes over the samples (default {d.epochs})")
    p.add_argument("--head", choices=HEADS, default=d.head,
                   help="continuous (L1), binned (cross-entropy over 256 bins per joint and step) or flow "
                        "(flow matching, sampled in --flow-steps Euler steps; continues chunks under async)")
    p.add_argument("--flow-steps", type=int, default=d.flow_steps,
                   help=f"flow head: Euler steps per sample (default {d.flow_steps}; inference cost grows with it)")
    p.add_argument("--include-failures", action="store_true",
                   help="also train on episodes not labelled success (default: successful ones only)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--image-size", type=int, default=d.image_size,
                   help=f"square image size the policy sees (default {d.image_size})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"samples per step, in total over all processes under torchrun (default {d.batch_size})")
    p.add_argument("--threads", type=int, default=d.threads,
                   help=f"torch threads (default {d.threads}; 1 leaves a core to the rest of the machine)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=d.device,
                   help="where to train (default cpu; torchrun with cuda gives each process its LOCAL_RANK GPU)")


def run(args: argparse.Namespace) -> int:
    from policies.builtin.dataset import DatasetError
    from recordings.reader import EpisodeError

    try:
        return _train(args)
    except (DatasetError, EpisodeError, ValueError, OSError) as exc:
        return fail(exc)


def _train(args: argparse.Namespace) -> int:
    from policies.builtin import distributed
    from policies.builtin.options import TrainOptions
    from policies.builtin.train import EpochReport, train

    if args.out.suffix.lower() != ".pt":
        raise ValueError(f"--out {args.out}: checkpoints of the built-in policy end in .pt (that is how "
                         "run-policy finds their loader)")
    options = TrainOptions(epochs=args.epochs, head=args.head, flow_steps=args.flow_steps,
                           include_failures=args.include_failures,
                           seed=args.seed, image_size=args.image_size, batch_size=args.batch_size,
                           threads=args.threads, device=args.device)
    main = distributed.from_env().is_main
    loading = Progress("train: loading")

    def on_epoch(r: EpochReport) -> None:
        print(f"train: epoch {r.epoch}/{r.epochs}  loss {r.loss:.4f}  {r.samples_per_s:.0f} samples/s  "
              f"elapsed {r.elapsed_s:.0f} s  eta {r.eta_s:.0f} s", file=sys.stderr, flush=True)

    try:
        result = train(args.dir, args.out, options, on_load=loading, on_epoch=on_epoch)
    finally:
        loading.close()
    if not main:
        return 0
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items()))
    size_mb = args.out.stat().st_size / 1e6
    print(f"{args.out}  {size_mb:.1f} MB")
    print(f"trained the {options.head} head on {result.samples} samples from {result.episodes} episodes"
          f"{f' (left out: {skipped})' if skipped else ''}: loss {result.initial_loss:.4f} -> {result.losses[-1]:.4f}, "
          f"target error {result.error_rad * 1e3:.1f} mrad; loading {result.load_s:.0f} s, training "
          f"{result.train_s:.0f} s", file=sys.stderr)
    return 0
