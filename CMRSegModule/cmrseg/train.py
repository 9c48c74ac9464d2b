"""The ``cmrseg train`` command: train the dense U-Net on ACDC ED/ES frames, resumably.

Output folder: ``split.json`` (patient-level 70/15/15 split stratified by group), ``history.csv`` and
``history.json`` (one row per epoch), ``best.pt`` (inference checkpoint of the epoch with the highest mean
validation Dice, self-describing) and ``last.pt`` (full training state, rewritten atomically after every
epoch and every ``--checkpoint-minutes`` inside one, and on Ctrl-C after the batch in hand; ``--resume``
continues from it). Every epoch draws its batches, crops and augmentations from a
generator seeded by ``(seed, epoch)``, so a resumed run repeats exactly what an uninterrupted one does.

This module stays light (no torch at import), so ``cmrseg --help`` is quick; the work is in
:mod:`cmrseg.training.runner`.
"""

from __future__ import annotations

import argparse
import sys

from cmrseg.errors import CMRSegError
from cmrseg.training.config import AUGMENTATION_NAMES, LOSS_NAMES, PRESET_NAMES, WEIGHTING_NAMES, TrainConfig


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``cmrseg train`` (defaults are applied later, so a resumed run can tell what was given)."""
    d = TrainConfig(data="")
    parser.add_argument("--data", help="ACDC root (the folder holding training/patientNNN), or a slice pack "
                        "(cmrseg.training.pack) with --split")
    parser.add_argument("--out", required=True, help="output folder (split, history, best.pt, last.pt)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    parser.add_argument("--preset", choices=PRESET_NAMES, help=f"network width preset (default {d.preset})")
    parser.add_argument("--base-filters", type=int, help="first-level filters, overriding the preset")
    parser.add_argument("--loss", choices=LOSS_NAMES, help=f"training loss (default {d.loss})")
    parser.add_argument(
        "--class-weighting", choices=WEIGHTING_NAMES, help=f"cross-entropy class weights (default {d.class_weighting})"
    )
    parser.add_argument("--epochs", type=int, help=f"total epochs (default {d.epochs}); sets the LR schedule")
    parser.add_argument("--batch-size", type=int, help=f"slices per batch (default {d.batch_size})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate of Adam (default {d.lr})")
    parser.add_argument("--weight-decay", type=float, help=f"Adam weight decay (default {d.weight_decay})")
    parser.add_argument("--warmup-epochs", type=float, help=f"linear warm-up before cosine decay ({d.warmup_epochs})")
    parser.add_argument("--iterations-per-epoch", type=int, help="batches per epoch (default: one pass)")
    parser.add_argument("--seed", type=int, help=f"split, initialisation and sampling seed (default {d.seed})")
    parser.add_argument("--split", help="split JSON to use instead of a new one (copied to --out/split.json)")
    parser.add_argument("--max-patients", type=int, help="use at most N training and N validation patients")
    parser.add_argument("--spacing-mm", type=float, help=f"network pixel spacing (default {d.spacing_mm})")
    parser.add_argument("--size", type=int, help=f"network input size, a multiple of 16 (default {d.size})")
    parser.add_argument("--jitter-px", type=int, help=f"random crop shift around the heart ({d.jitter_px})")
    parser.add_argument("--precision", choices=("bf16", "fp32"), help="default: bf16 where native")
    parser.add_argument(
        "--augmentation", choices=AUGMENTATION_NAMES, help=f"online augmentation setting (default {d.augmentation})"
    )
    parser.add_argument(
        "--no-augment", dest="augmentation", action="store_const", const="none", help="same as --augmentation none"
    )
    parser.add_argument(
        "--oversample", metavar="NAME=FACTOR,...",
        help="draw slices of a phase (ED, ES) or ACDC group (NOR, MINF, DCM, HCM, RV) FACTOR times as often",
    )
    parser.add_argument("--init", help="start from this checkpoint's weights (fine-tuning; same split required)")
    parser.add_argument("--init-member", type=int, help="which network of an ensemble --init checkpoint (0-based)")
    parser.add_argument("--neighbour-slices", type=int, metavar="K",
                        help="2.5-D input: each slice with its K neighbours on either side as channels (default "
                             f"{d.neighbour_slices}); with --init, the neighbours' weights start at zero")
    parser.add_argument("--distil-from", metavar="MODEL",
                        help="also learn to reproduce this trained model's probabilities (distillation, e.g. of an "
                             "ensemble into one network; same split required)")
    parser.add_argument("--distil-weight", type=float, metavar="W",
                        help="the distillation term's share of the loss, the expert labels' 1 - W (default 0.5)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0, metavar="M",
                        help="also save inside an epoch every M minutes (default 10; 0: after every batch), so a "
                             "stopped run resumes where it was; Ctrl-C saves after the batch in hand")
    parser.set_defaults(run=run_train)
    return parser


def run_train(args: argparse.Namespace) -> int:
    """Train (or resume) as the parsed ``cmrseg train`` arguments say; returns the exit code."""
    from cmrseg.training.runner import run_training

    return run_training(args)


def main(argv: list[str] | None = None) -> int:
    parser = add_train_arguments(argparse.ArgumentParser(prog="cmrseg train", description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CMRSegError as exc:
        print(f"cmrseg train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
