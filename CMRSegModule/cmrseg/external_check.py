"""A model on another vendor and site: the Sunnybrook cine studies against their expert contours.

For each study: LV Dice at ED and ES on the slices the experts contoured, myocardium Dice at ED on the
slices with an epicardial contour, the myocardial area found over the expert's there (below 1: the wall is
read thinner), and the RV, which Sunnybrook does not contour, held to plausibility: its volumes, EF and the
quality check. LV volumes are those of the contoured slices.

Run as ``python -m cmrseg.external_check SUNNYBROOK_ROOT [--model PATH] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cmrseg.errors import CMRSegError
from cmrseg.inference import Segmenter, segment_frames
from cmrseg.io.sunnybrook import load_sunnybrook_contours, read_link_csv
from cmrseg.labels import LV, MYO
from cmrseg.measures import frame_measures, study_measures
from cmrseg.qc import quality_check


def check_case(case, segmenter: Segmenter) -> dict:
    """The numbers of one loaded :class:`~cmrseg.io.sunnybrook.SunnybrookCase`."""
    predicted = segment_frames(case.study, [case.ed_frame, case.es_frame], segmenter)
    row = case.contour_dice(predicted)
    for phase, frame, mask, slices in case.phases():
        row[f"lv_ml_{phase}"] = float((predicted[frame][slices] == LV).sum()) * case.study.voxel_volume_ml
        row[f"lv_ml_{phase}_expert"] = float((mask[slices] == LV).sum()) * case.study.voxel_volume_ml
    epi = list(case.epi_slices)
    found = int((predicted[case.ed_frame][epi] == MYO).sum())
    row["myo_area_ratio_ed"] = found / max(1, int((case.ed_mask[epi] == MYO).sum()))
    ed, es = (frame_measures(predicted[f], case.study.spacing) for f in (case.ed_frame, case.es_frame))
    measures = study_measures(ed, es).as_dict()
    row.update({key: measures[key] for key in ("rv_edv_ml", "rv_esv_ml", "rv_ef_pct")})
    geometry = (case.study.spacing, case.study.direction)
    row["qc"] = quality_check(predicted, case.ed_frame, case.es_frame, measures, geometry=geometry)["status"]
    return row


def check(root: str | Path, segmenter: Segmenter) -> dict[str, dict]:
    """``{study id: numbers}`` for every study of a Sunnybrook copy's ``link.csv``."""
    root = Path(root)
    return {case_id: check_case(load_sunnybrook_contours(root / "dicoms" / case_id, contours), segmenter)
            for case_id, contours in sorted(read_link_csv(root).items())}


def format_results(results: dict[str, dict]) -> str:
    lines = [f"{'study':11} {'LV ED':>6} {'LV ES':>6} {'Myo ED':>6} {'Myo area':>8} {'RV EDV':>7} {'RV ESV':>7} "
             f"{'RV EF':>6}  QC"]
    for case_id, r in results.items():
        lines.append(f"{case_id:11} {r['lv_dice_ed']:6.3f} {r['lv_dice_es']:6.3f} {r['myo_dice_ed']:6.3f} "
                     f"{r['myo_area_ratio_ed']:8.2f} {r['rv_edv_ml']:7.1f} {r['rv_esv_ml']:7.1f} "
                     f"{r['rv_ef_pct']:6.1f}  {r['qc']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmrseg.external_check", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="Sunnybrook copy (the folder with link.csv, dicoms/ and contours/)")
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    try:
        results = check(args.root, Segmenter.load(args.model, device="cpu"))
    except CMRSegError as error:
        print(f"cmrseg: error: {error}", file=sys.stderr)
        return 2
    print(format_results(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
