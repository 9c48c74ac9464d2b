"""The work of ``cmrseg train``: set up or resume a run, then train, validate and save epoch by epoch."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from cmrseg.augment import AUGMENTATIONS
from cmrseg.errors import CMRSegError
from cmrseg.inference import resolve_device
from cmrseg.labels import STRUCTURES
from cmrseg.losses import SegmentationLoss, class_frequencies, class_weights
from cmrseg.model.checkpoint import load_weights, read_checkpoint, save_checkpoint
from cmrseg.model.dense_unet import build_model, count_parameters
from cmrseg.progress import LinePrinter
from cmrseg.training.config import TrainConfig, resolve_config
from cmrseg.training.data import load_slices
from cmrseg.training.distil import load_teacher
from cmrseg.training.epoch_checkpoints import EpochCheckpoints, TrainingStopped
from cmrseg.training.loop import EpochPosition, Runtime, evaluate, train_epoch
from cmrseg.training.pack import is_pack
from cmrseg.training.record import checkpoint_metadata
from cmrseg.training.sampling import slice_weights
from cmrseg.training.schedule import make_scheduler, set_scheduled_rate
from cmrseg.training.split import file_sha256, make_split, read_split, write_split
from cmrseg.training.state import load_state, restore_rng, save_state, write_history
from cmrseg.training.warm_start import initial_weights


@contextmanager
def removed_if_refused(out: Path) -> Iterator[None]:
    """Create ``out``, and remove it again if it was new and setting the run up fails with a user error or is
    interrupted."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except (CMRSegError, KeyboardInterrupt):
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def prepare_split(out: Path, config: TrainConfig, split_file: str | None) -> tuple[dict[str, Any], Path]:
    """The run's split: ``out/split.json`` if it exists, else ``--split``, else a new one from the seed."""
    target = out / "split.json"
    if target.exists():
        split = read_split(target)
        if split_file and read_split(split_file) != split:
            raise CMRSegError(f"{target} already exists and differs from --split {split_file}.")
    elif split_file:
        split = read_split(split_file)
        write_split(split, target)
    elif is_pack(config.data):
        raise CMRSegError(f"{config.data} is a slice pack: give the split it was made for with --split.")
    else:
        split = make_split(config.data, config.seed)
        write_split(split, target)
    return split, target


def run_training(args: argparse.Namespace) -> int:
    """Train (or resume) as the ``cmrseg train`` arguments say; returns the exit code."""
    out = Path(args.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    if args.checkpoint_minutes is not None and not args.checkpoint_minutes >= 0:
        raise CMRSegError(f"--checkpoint-minutes must be 0 or more, not {args.checkpoint_minutes}.")
    if args.threads is not None and args.threads < 1:
        raise CMRSegError(f"--threads {args.threads}: give 1 or more.")
    state = None
    if args.resume:
        if not last_path.is_file():
            raise CMRSegError(f"Nothing to resume: {last_path} does not exist.")
        state = load_state(last_path)
    elif last_path.exists():
        raise CMRSegError(
            f"{out} already holds a training run (last.pt); add --resume to continue it or use another --out."
        )
    config = resolve_config(args, state["config"] if state else None)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    with removed_if_refused(out):  # a run refused before its first epoch leaves nothing behind
        if config.oversample and is_pack(config.data):
            raise CMRSegError("--oversample reads the patients' groups from the ACDC folder's Info.cfg files: give "
                              f"that folder as --data, not the slice pack {config.data}.")
        split, split_path = prepare_split(out, config, args.split)
        limit = config.max_patients
        train_patients, val_patients = split["train"][:limit], split["val"][:limit]
        if not train_patients or not val_patients:
            raise CMRSegError(f"The split {split_path} needs at least one training and one validation patient.")

        progress = LinePrinter(min_interval=5.0)
        preprocess = config.preprocess()
        context = config.neighbour_slices
        train = load_slices(config.data, train_patients, preprocess, config.jitter_px, progress,
                            "Loading training data", context)
        val = load_slices(config.data, val_patients, preprocess, 0, progress, "Loading validation data", context)
        sampling = slice_weights(train, config.data, config.oversample) if config.oversample else None
        if state is not None:
            weights = state["class_weights"]
        else:
            frequencies = class_frequencies(train.central_labels().numpy())
            weights = torch.from_numpy(class_weights(frequencies, config.class_weighting)).float()
        loss_fn = SegmentationLoss(config.loss, weights).to(device)

        torch.manual_seed(config.seed)
        model = build_model(config.preset, **config.model_args())
        init_sha256 = state.get("init_sha256") if state else None
        if state is None and config.init:
            load_weights(model, initial_weights(config.init, config.init_member, split_path, context), config.init)
            init_sha256 = file_sha256(config.init)
        runtime = Runtime(device, config.precision, channels_last=True)
        teacher, teacher_sha256 = (load_teacher(config, split_path, runtime, weights) if config.distil_from
                                   else (None, None))
        if state is not None and (state.get("teacher_sha256") or None) != teacher_sha256:
            if not state.get("teacher_sha256"):
                raise CMRSegError("Cannot resume: this run was not distilling; --distil-from needs a new run.")
            raise CMRSegError(f"Cannot resume: {config.distil_from} is not the model this run was distilling from "
                              "(the file has changed).")
    model = model.to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    iterations = config.iterations_per_epoch or max(1, len(train) // config.batch_size)
    total_steps = config.epochs * iterations
    warmup = min(round(config.warmup_epochs * iterations), total_steps // 2)
    scheduler = make_scheduler(optimizer, total_steps, warmup)
    augmentation = AUGMENTATIONS[config.augmentation]

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    wall = 0.0
    start_epoch = 1
    part_done: dict[str, Any] | None = None  # the position and time of an epoch saved part-way through
    if state is not None:
        load_weights(model, state["model"], str(last_path))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
        history, best, wall = state["history"], state["best"], state["wall_seconds"]
        start_epoch = state["epoch"] + 1
        part_done = state.get("partial")
        if config.epochs != state["config"]["epochs"]:  # the cosine now spans the new total, from this step on
            set_scheduled_rate(scheduler)
            print(f"The learning-rate schedule now spans {config.epochs} epochs (was {state['config']['epochs']}); "
                  f"epoch {start_epoch} continues at {optimizer.param_groups[0]['lr']:.2e}.", flush=True)
    n_parameters = count_parameters(model)

    def save_best() -> None:
        meta = checkpoint_metadata(
            config, split_path, train, val, weights, augmentation, history, best, wall, device, n_parameters,
            init_sha256, teacher_sha256,
        )
        save_checkpoint(best_path, model, meta, preset=config.preset)

    if state is not None and best.get("epoch") == state["epoch"] and saved_epoch(best_path) != best["epoch"]:
        save_best()  # stopped after last.pt and before best.pt: last.pt holds the best network
    print(
        f"Training {config.preset} dense U-Net ({n_parameters:,} parameters"
        + (f", {context} neighbour slices on each side" if context else "") + f") on {len(train)} slices of "
        f"{len(train.volumes)} frames, validating on {len(val.volumes)} frames; {iterations} batches of "
        f"{config.batch_size} per epoch; {device}, {config.precision}, {torch.get_num_threads()} threads; "
        f"class weights {[round(float(w), 3) for w in weights]}; "
        + (resuming_at(start_epoch, part_done, iterations) if state else f"{config.epochs} epochs.")
        + (f" Started from the weights of {config.init} (network {config.init_member or 0})." if config.init else "")
        + (f" Oversampling {config.oversample}." if config.oversample else "")
        + (f" Distilling from {config.distil_from} (weight {config.distil_weight})." if teacher else ""),
        flush=True,
    )
    if start_epoch > config.epochs:
        print(f"The run in {out} has already finished its {config.epochs} epochs.", flush=True)
        return 0

    def save_last(completed: int, partial: dict[str, Any] | None = None) -> None:
        save_state(
            last_path, model=model, optimizer=optimizer, scheduler=scheduler, epoch=completed, config=asdict(config),
            history=history, best=best, class_weights=weights, wall_seconds=wall, init_sha256=init_sha256,
            teacher_sha256=teacher_sha256, partial=partial,
        )  # fmt: skip

    saved_at = None  # what last.pt holds, for the message on a stop
    if state is not None:
        saved_at = (f"after epoch {start_epoch - 1}" if part_done is None
                    else inside_epoch(start_epoch, part_done["step"], iterations))

    def save_part_of_epoch(position: EpochPosition) -> None:  # reads the epoch in progress from the loop below
        nonlocal saved_at
        save_last(epoch - 1, {"epoch": epoch, "step": position.step, "loss_sum": position.loss_sum,
                              "generator": position.generator_state, "lr": lr,
                              "seconds": time.perf_counter() - started})
        saved_at = inside_epoch(epoch, position.step, iterations)

    every = None if args.checkpoint_minutes is None else 60 * args.checkpoint_minutes
    try:
        with EpochCheckpoints(save_part_of_epoch, every) as checkpoints:
            for epoch in range(start_epoch, config.epochs + 1):
                generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
                start = None
                started, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
                if part_done is not None and part_done["epoch"] == epoch:
                    start = EpochPosition(part_done["step"], part_done["loss_sum"], part_done["generator"])
                    started, lr = started - part_done["seconds"], part_done["lr"]
                train_loss = train_epoch(
                    model, train, loss_fn, optimizer, scheduler, runtime, augmentation, generator,
                    config.batch_size, iterations, progress, f"epoch {epoch}/{config.epochs}", sampling, teacher,
                    start, checkpoints,
                )  # fmt: skip
                metrics = evaluate(model, val, loss_fn, runtime)
                seconds = time.perf_counter() - started
                wall += seconds
                row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, **metrics,
                       "epoch_seconds": round(seconds, 2)}
                history.append(row)
                improved = not best or row["dice_mean"] > best["dice_mean"]
                if improved:
                    best = dict(row)
                write_history(out, history)
                # last.pt first: a run stopped before best.pt is written resumes from it and writes best.pt then.
                save_last(epoch)
                saved_at = f"after epoch {epoch}"
                if improved:
                    save_best()
                print(format_row(row, config.epochs, best, improved), flush=True)
                if epoch < config.epochs:  # a stop asked for during the last epoch's validation: it is done
                    checkpoints.stop_if_requested()
    except (TrainingStopped, KeyboardInterrupt):
        if saved_at is None:
            print("cmrseg train: stopped before the run was first saved: run the same command to start it again.",
                  file=sys.stderr, flush=True)
        else:
            print(f"cmrseg train: stopped; {last_path} holds the run as it was {saved_at}: add --resume to "
                  "continue from there.", file=sys.stderr, flush=True)
        return 130
    print(f"Done: best mean validation Dice {best['dice_mean']:.4f} at epoch {best['epoch']}; {best_path}", flush=True)
    return 0


def resuming_at(epoch: int, part_done: dict[str, Any] | None, iterations: int) -> str:
    if part_done is None:
        return f"resuming at epoch {epoch}."
    return f"resuming {inside_epoch(epoch, part_done['step'], iterations)}."


def inside_epoch(epoch: int, step: int, iterations: int) -> str:
    return f"in epoch {epoch} after batch {step} of {iterations}"


def saved_epoch(best_path: Path) -> int | None:
    """The epoch whose network ``best.pt`` holds (None when there is no readable one)."""
    try:
        return read_checkpoint(best_path)[0]["training"]["best_epoch"]
    except (CMRSegError, KeyError):
        return None


def format_row(row: dict[str, Any], epochs: int, best: dict[str, Any], improved: bool) -> str:
    dice = " ".join(f"{s.key} {row[f'dice_{s.key}']:.3f}" for s in reversed(STRUCTURES))
    mark = " *" if improved else f" (best {best['dice_mean']:.4f} @ {best['epoch']})"
    return (
        f"epoch {row['epoch']}/{epochs}  lr {row['lr']:.2e}  train {row['train_loss']:.4f}  "
        f"val {row['val_loss']:.4f}  Dice {dice}  mean {row['dice_mean']:.4f}  {row['epoch_seconds']:.1f} s{mark}"
    )
