"""A slice pack: a split's training slices pre-processed once into one file, for training where the ACDC
NIfTI files and SimpleITK are not at hand (a GPU machine that gets only what is copied to it).

``python -m cmrseg.training.pack ACDC_ROOT --split SPLIT.json [SPLIT.json ...] --out PACK`` writes, for the
training patients of the splits, each ED and ES frame on the training canvas (crop size + 2 x jitter pixels),
and for their validation patients on the validation crop, exactly as :func:`load_slices` makes them from the
NIfTI files. The labels are exact; the images, in [0, 1], are rounded to 7 bits (steps of 1/127, an error of at
most half a step, 0.0039, under a seventh of the largest noise the standard augmentation adds), so that the
85 training and 15 validation patients of the shipped split and its folds fit in 44 MB. ``cmrseg train --data
PACK`` then reads the slices from the pack instead of the ACDC folder.
"""

from __future__ import annotations

import argparse
import lzma
import sys
from pathlib import Path
from typing import Any

import torch

from cmrseg.errors import CMRSegError
from cmrseg.io.acdc import PHASES
from cmrseg.model.checkpoint import atomic_save
from cmrseg.preprocess import PreprocessConfig
from cmrseg.training.data import SliceSet, load_slices
from cmrseg.training.split import read_split

FORMAT = "cmrseg-slice-pack-1"
LEVELS = 127  # image grey levels above 0: 7 bits


def is_pack(data: str | Path) -> bool:
    return Path(data).is_file()


def _section(slices: SliceSet, patients: list[str]) -> dict[str, Any]:
    levels = (slices.images.float() * LEVELS).round().clamp(0, LEVELS).to(torch.uint8)
    return {
        "patients": list(patients),
        "margin": slices.margin,
        "shape": list(slices.images.shape),
        "volumes": [[name, first, count] for name, first, count in slices.volumes],
        "images": _packed(levels),
        "labels": _packed(slices.labels),
    }


def _packed(array: torch.Tensor) -> torch.Tensor:
    return torch.frombuffer(bytearray(lzma.compress(array.numpy().tobytes(), preset=6)), dtype=torch.uint8)


def _unpacked(data: torch.Tensor, shape: list[int]) -> torch.Tensor:
    raw = bytearray(lzma.decompress(data.numpy().tobytes()))
    return torch.frombuffer(raw, dtype=torch.uint8).reshape(shape)


def write_pack(
    data_root: str | Path, train: list[str], val: list[str], config: PreprocessConfig, jitter_px: int, out: Path
) -> None:
    """The pack of ``train`` patients on the training canvas and ``val`` patients on the validation crop."""
    content = {
        "format": FORMAT,
        "preprocess": config.as_dict(),
        "train": _section(load_slices(data_root, train, config, jitter_px, None), train),
        "val": _section(load_slices(data_root, val, config, 0, None), val),
    }
    atomic_save(content, out)


def read_pack(path: str | Path) -> dict[str, Any]:
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds on a file that is not one of its own
        raise CMRSegError(f"{path} is neither an ACDC folder nor a slice pack ({exc.__class__.__name__}).") from exc
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise CMRSegError(f"{path} is neither an ACDC folder nor a slice pack of this version ({FORMAT}).")
    return content


def slices_from_pack(
    path: str | Path, patients: list[str], config: PreprocessConfig, margin: int, context: int
) -> SliceSet:
    """The frames of ``patients`` from the pack's section made with ``margin`` and pre-processing ``config``."""
    content = read_pack(path)
    if content["preprocess"] != config.as_dict():
        raise CMRSegError(f"{path} was pre-processed with {content['preprocess']}, not {config.as_dict()}: "
                          "make the pack again with this run's --spacing-mm and --size.")
    train, val = content["train"], content["val"]
    # The runner asks for its validation patients without a margin and for its training patients with its
    # --jitter-px, which may be 0 too: a patient the pack holds for training only tells them apart.
    training = margin > 0 or any(p in train["patients"] and p not in val["patients"] for p in patients)
    section = train if training else val
    if section["margin"] != margin:
        raise CMRSegError(f"{path} was made with --jitter-px {train['margin']}, not {margin}: make the pack again "
                          "with this run's --jitter-px.")
    missing = sorted(set(patients) - set(section["patients"]))
    if missing:
        where = "training" if training else "validation"
        raise CMRSegError(f"{path} holds no {where} slices of {', '.join(missing)}: make it with a split that has "
                          f"them as {where} patients.")
    images = _unpacked(section["images"], section["shape"])
    labels = _unpacked(section["labels"], section["shape"])
    by_name = {name: (first, count) for name, first, count in section["volumes"]}
    chosen, volumes, start = [], [], 0
    for patient in patients:
        for phase in PHASES:
            first, count = by_name[f"{patient}_{phase}"]
            chosen.append(torch.arange(first, first + count))
            volumes.append((f"{patient}_{phase}", start, count))
            start += count
    index = torch.cat(chosen)
    return SliceSet((images[index].float() / LEVELS).to(torch.float16), labels[index].clone(), volumes, margin, context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmrseg.training.pack", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="the ACDC folder")
    parser.add_argument("--split", nargs="+", required=True, help="split files whose patients the pack holds")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--spacing-mm", type=float, default=1.5)
    parser.add_argument("--size", type=int, default=176)
    parser.add_argument("--jitter-px", type=int, default=32)
    args = parser.parse_args(argv)
    try:
        if args.out.exists():
            raise CMRSegError(f"{args.out} exists; choose another --out.")
        if not args.out.parent.is_dir():
            raise CMRSegError(f"The folder of --out, {args.out.parent}, does not exist.")
        splits = [read_split(path) for path in args.split]
        val = sorted({p for s in splits for p in s["val"]})
        train = sorted({p for s in splits for p in s["train"]})  # a patient may be in both: each part is whole
        if not train or not val:
            raise CMRSegError("The splits name no training or no validation patients.")
        config = PreprocessConfig(target_spacing_mm=args.spacing_mm, size=(args.size, args.size))
        write_pack(args.data, train, val, config, args.jitter_px, args.out)
    except CMRSegError as exc:
        print(f"cmrseg: error: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote {args.out}: {len(train)} training and {len(val)} validation patients.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
