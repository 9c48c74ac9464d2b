"""How the mirrored view is decided, measured on ACDC: every patient's ED and ES frame shown to the first network
as stored and mirrored left-right, the share of the LV's slices that hold the RV in each, and what
:func:`cmrseg.inference.found_only_mirrored` makes of them: frames as stored that it would take mirrored (it
must take none) and frames stored mirrored that it takes back.

Run as ``python -m cmrseg.mirror_check ACDC_ROOT [--model PATH]``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from cmrseg.errors import CMRSegError
from cmrseg.inference import Segmenter, found_only_mirrored, rv_share
from cmrseg.io.acdc import list_patients, load_frame


def check(root, segmenter: Segmenter) -> dict[str, dict]:
    """Per phase: the RV shares as stored and mirrored, the frames as stored taken mirrored, and the number of
    frames stored mirrored that are taken back."""
    results = {phase: {"stored": [], "mirrored": [], "taken_mirrored": [], "taken_back": 0, "frames": 0}
               for phase in ("ED", "ES")}
    for patient in list_patients(root):
        for phase, result in results.items():
            study = load_frame(patient, phase, with_mask=False).study
            image = study.frame(0)
            stored = segmenter.heart_labels(image, study.spacing)
            mirrored = segmenter.heart_labels(np.ascontiguousarray(image[..., ::-1]), study.spacing)
            for key, labels in (("stored", stored), ("mirrored", mirrored)):
                share = rv_share(labels)
                if share is not None:
                    result[key].append(share)
            if found_only_mirrored(stored, mirrored):
                result["taken_mirrored"].append(patient.name)
            result["taken_back"] += found_only_mirrored(mirrored, stored)
            result["frames"] += 1
    return results


def format_results(results: dict[str, dict]) -> str:
    lines = []
    for phase, r in results.items():
        lines.append(f"{phase}: RV on {min(r['stored']):.2f}-{max(r['stored']):.2f} of the LV's slices as stored, "
                     f"{min(r['mirrored']):.2f}-{max(r['mirrored']):.2f} mirrored "
                     f"({r['frames'] - len(r['mirrored'])} mirrored frames without LV); "
                     f"taken mirrored as stored: {len(r['taken_mirrored'])} {r['taken_mirrored']}; "
                     f"stored mirrored, taken back: {r['taken_back']} of {r['frames']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmrseg.mirror_check", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="ACDC copy (the folder of the patient folders, or its parent)")
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    args = parser.parse_args(argv)
    try:
        results = check(args.root, Segmenter.load(args.model, device="cpu", bf16=False))
    except CMRSegError as error:
        print(f"cmrseg: error: {error}", file=sys.stderr)
        return 2
    print(format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
