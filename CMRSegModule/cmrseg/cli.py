"""The ``cmrseg`` command. Heavy packages are imported inside the sub-commands, so ``--help`` is quick."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

from cmrseg import __version__, printout
from cmrseg.errors import CMRSegError


def _info(args: argparse.Namespace) -> int:
    from cmrseg.io.load import load_study
    from cmrseg.progress import LinePrinter

    study = load_study(args.input, series_uid=args.series, progress=LinePrinter())
    summary = study.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(printout.format_summary(summary))
    return 0


PHANTOM_FILES = ("dicom", "cine.nii.gz", "truth_ED_seg.nii.gz", "truth_ES_seg.nii.gz", "truth.json")
PHANTOM_DICOM = re.compile(r"IM_z\d+_t\d+\.dcm")  # cmrseg.io.dicom_write's file names


def _phantom(args: argparse.Namespace) -> int:
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from cmrseg.io.dicom_write import write_dicom_cine
    from cmrseg.io.volume_files import write_frame, write_study
    from cmrseg.outputs import check_output_folder
    from cmrseg.phantom import make_phantom
    from cmrseg.progress import LinePrinter

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # out/example on a fresh clone
    out = check_output_folder(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise CMRSegError(f"{out} is not empty; choose another --out or pass --overwrite.")
    if (out / "dicom").is_dir() and not all(PHANTOM_DICOM.fullmatch(p.name) for p in (out / "dicom").iterdir()):
        raise CMRSegError(f"{out / 'dicom'} holds files that are not a phantom's; choose another --out.")
    others = [name for name in PHANTOM_FILES[1:] if (out / name).exists() or (out / name).is_symlink()]
    if others and not _holds_a_phantom(out):  # --overwrite replaces an earlier phantom, never a user's files
        raise CMRSegError(f"{out} holds {', '.join(others)}, not a phantom's (no phantom truth.json beside them); "
                          "choose another --out.")
    phantom = make_phantom(seed=args.seed, frames=args.frames, oblique=args.oblique)
    # written into a hidden folder, then moved in: an interruption or a full disk leaves no partial phantom, and
    # --overwrite leaves none of an earlier phantom's files (a longer cine's extra phases) behind
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".cmrseg-phantom-") as scratch:
        scratch = Path(scratch)
        write_dicom_cine(phantom.study, scratch / "dicom", progress=LinePrinter())
        write_study(phantom.study, scratch / "cine.nii.gz")
        for phase, frame in (("ED", phantom.study.ed_frame), ("ES", phantom.study.es_frame)):
            write_frame(phantom.labels[frame], phantom.study, scratch / f"truth_{phase}_seg.nii.gz")
        truth = {"ed_frame": phantom.study.ed_frame, "es_frame": phantom.study.es_frame, **phantom.truth.summary()}
        (scratch / "truth.json").write_text(json.dumps(truth, indent=2))
        for name in PHANTOM_FILES:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(scratch / name, target)
    print(f"Phantom cine ({phantom.study.num_frames} frames x {phantom.study.num_slices} slices) written to {out}:")
    print(f"  {out / 'dicom'} (DICOM series), {out / 'cine.nii.gz'} (4D NIfTI), {out / 'truth.json'} (analytic), "
          f"truth_ED_seg.nii.gz and truth_ES_seg.nii.gz (true label maps)")
    return 0


def _holds_a_phantom(folder: Path) -> bool:
    """Whether ``folder`` holds what ``cmrseg phantom`` wrote: its truth.json, with the analytic volumes."""
    try:
        truth = json.loads((folder / "truth.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(truth, dict) and {"ed_frame", "es_frame", "lv_edv_ml", "rv_edv_ml"} <= truth.keys()


def _segment(args: argparse.Namespace) -> int:
    from cmrseg.inference import Segmenter
    from cmrseg.outputs import check_output_folder
    from cmrseg.progress import LinePrinter
    from cmrseg.segment import run_segment
    from cmrseg.validate import check_height_weight, check_sex_age

    if args.stop_when_stdin_closes:
        from cmrseg.stopping import stop_when_stdin_closes

        stop_when_stdin_closes()
    check_height_weight(args.height, args.weight)  # the user's mistakes first, before any work
    check_sex_age(args.sex, args.age)
    check_output_folder(args.out)
    segmenter = Segmenter.load(args.model, device=args.device)
    result = run_segment(
        args.input,
        args.out,
        segmenter,
        ed=args.ed,
        es=args.es,
        all_frames=args.all_frames,
        basal_rule=args.basal_rule,
        bsa_method=args.bsa,
        series_uid=args.series,
        height_cm=args.height,
        weight_kg=args.weight,
        overwrite=args.overwrite,
        progress=LinePrinter(),
        report=args.report,
        dicom_seg=args.dicom_seg,
        dicom_sr=args.dicom_sr,
        sex=args.sex,
        age_years=args.age,
    )
    print(printout.format_measures(result.measures))
    print(printout.format_qc(result.measures["qc"]))
    if "review" in result.measures:
        print(printout.format_review(result.measures["review"], result.measures["qc"]))
    print(f"Outputs in {args.out}: {', '.join(p.name for p in result.outputs)}")
    return 3 if args.strict and result.measures["qc"]["status"] == "fail" else 0


def _evaluate(args: argparse.Namespace) -> int:
    from cmrseg.evaluate_command import run_evaluate

    return run_evaluate(args)


def _benchmark(args: argparse.Namespace) -> int:
    if args.cohort:
        from cmrseg.benchmark_cohort import main as benchmark_cohort

        return benchmark_cohort(args.cohort, args.repeats, args.report)
    from cmrseg.benchmark import main as benchmark

    return benchmark(args.models, args.repeats)


def _whole(lowest: int, highest: int | None = None):
    """An argparse type: a whole number in ``[lowest, highest]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lowest or (highest is not None and value > highest):
            raise argparse.ArgumentTypeError(f"{value} is not {lowest}" + (f"-{highest}" if highest else " or more"))
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """A command-line mistake is one ``cmrseg: error:`` line (and exit status 2), as every other error is, with
    where to find the usage, not the usage itself."""

    def error(self, message: str):
        print(f"cmrseg: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cmrseg", description="Short-axis cine cardiac MRI segmentation.")
    parser.add_argument("--version", action="version", version=f"cmrseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="summarise a study (DICOM folder, NIfTI/NRRD, ACDC patient)")
    info.add_argument("input", nargs="+", help="DICOM folder, ACDC patient folder, or NIfTI/NRRD file(s)")
    info.add_argument("--series", help="SeriesInstanceUID to read when a DICOM folder holds several cines")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(run=_info)

    phantom = commands.add_parser("phantom", help="write the synthetic beating-heart cine (DICOM + NIfTI + truth)")
    phantom.add_argument("--out", required=True, help="output folder")
    phantom.add_argument("--seed", type=_whole(0), default=0, help="random seed (default 0)")
    phantom.add_argument("--frames", type=int, default=20, help="cardiac phases (default 20)")
    phantom.add_argument("--oblique", action="store_true", help="double-oblique slice orientation")
    phantom.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    phantom.set_defaults(run=_phantom)

    segment = commands.add_parser("segment", help="segment ED/ES (or all frames) and report the clinical parameters")
    segment.add_argument("input", nargs="+", help="DICOM folder, ACDC patient folder, 4D NIfTI/NRRD or 3D frame files")
    segment.add_argument("--out", required=True, help="output folder")
    segment.add_argument("--model", help="checkpoint file (default: the shipped model)")
    segment.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    segment.add_argument("--ed", type=int, help="end-diastolic frame (0-based); default: from the input or the curve")
    segment.add_argument("--es", type=int, help="end-systolic frame (0-based)")
    segment.add_argument("--all-frames", action="store_true", help="segment every frame (volume curve)")
    segment.add_argument("--basal-rule", default="none", choices=("none", "50", "100"),
                         help="keep basal LV slices with >= 50 %% or 100 %% of the border in myocardium")
    segment.add_argument("--bsa", default="mosteller", choices=("mosteller", "dubois"), help="BSA formula")
    segment.add_argument("--height", type=float, help="patient height in cm (overrides the input's)")
    segment.add_argument("--weight", type=float, help="patient weight in kg (overrides the input's)")
    segment.add_argument("--sex", help="patient sex M, F or O (overrides the input's; picks the reference ranges)")
    segment.add_argument("--age", type=float, help="patient age in years (overrides the input's)")
    segment.add_argument("--series", help="SeriesInstanceUID when a DICOM folder holds several cines")
    segment.add_argument("--overwrite", action="store_true",
                         help="replace the previous CMRSeg outputs in --out as a whole (other files are kept)")
    segment.add_argument("--strict", action="store_true", help="exit with status 3 when the quality check fails")
    segment.add_argument("--report", default="html", choices=("html", "pdf", "none"),
                         help="report.html (default), pdf: report.html and report.pdf, or none")
    segment.add_argument("--dicom-seg", action="store_true",
                         help="also write ED/ES DICOM SEG files referencing the input's DICOM images (for PACS)")
    segment.add_argument("--dicom-sr", action="store_true",
                         help="also write the parameters as a DICOM SR (TID 1500) referencing the ED/ES images")
    segment.add_argument("--stop-when-stdin-closes", action="store_true",
                         help="stop (as with Ctrl-C) when standard input closes; for callers that cannot signal")
    segment.set_defaults(run=_segment)

    evaluation = commands.add_parser("evaluate", help="the paper's Table 1 and Table 3 on a split or on folders")
    evaluation.add_argument("--out", required=True, help="output folder for tables, per-case results and plots")
    evaluation.add_argument("--split", help="split JSON (default: the one shipped with the model)")
    evaluation.add_argument("--part", default="test", choices=("train", "val", "test"), help="default: test")
    evaluation.add_argument("--data", help="ACDC root (default: the split's)")
    evaluation.add_argument("--model", help="checkpoint to run (default: the shipped model)")
    evaluation.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    evaluation.add_argument("--fp32", action="store_true", help="fp32 (default: bf16 where native: recent GPUs, "
                                                                "CPUs with AVX-512 BF16 or AMX)")
    evaluation.add_argument("--pred", help="folder of predicted label maps instead of running the model")
    evaluation.add_argument("--corrected", help="second folder (e.g. physician-corrected) reported as FCN+corr")
    evaluation.add_argument("--ref", help="folder of reference label maps (instead of an ACDC split)")
    evaluation.add_argument("--cross-validation", nargs="+", metavar="RUN",
                            help="fold runs of cmrseg train (best.pt, split.json): each network segments its own "
                                 "test patients, one table for all")
    evaluation.set_defaults(run=_evaluate)

    bench = commands.add_parser("benchmark", help="time segmentation (ms per slice, study, cine) and peak memory")
    bench.add_argument("--models", nargs="+", default=["shipped", "paper"],
                       help="'shipped', 'paper' (untrained paper preset) or checkpoint paths")
    bench.add_argument("--repeats", type=_whole(1), default=5, help="runs per measurement (median reported)")
    bench.add_argument("--cohort", nargs="+", metavar="STUDY",
                       help="instead: time these studies as one segment process each against one batch process")
    bench.add_argument("--report", default="html", choices=("html", "none"), help="with --cohort (default html)")
    bench.set_defaults(run=_benchmark)

    from cmrseg.batch import add_batch_arguments

    add_batch_arguments(commands.add_parser(
        "batch", help="segment a cohort: many studies in one process, or on a Dask cluster (--scheduler)"))

    send = commands.add_parser("send", help="send DICOM SEG/SR files (or a run folder's) to a PACS with C-STORE")
    send.add_argument("input", nargs="+", help="DICOM files, or output folders whose *.seg.dcm and *.sr.dcm are sent")
    send.add_argument("--pacs", required=True, help="the PACS's HOST:PORT")
    send.add_argument("--called-aet", default="ANY-SCP", help="the PACS's AE title (default ANY-SCP)")
    send.add_argument("--calling-aet", default="CMRSEG", help="this computer's AE title, as the PACS knows it")
    send.set_defaults(run=_send)

    review = commands.add_parser("review", help="review and correct a result in the browser (the module's workflow)")
    review.add_argument("input", nargs="+",
                        help="a finished `cmrseg segment` output folder, or a study as `cmrseg segment` takes it")
    review.add_argument("--out", help="for a study: the folder it is segmented into first")
    review.add_argument("--port", type=_whole(1, 65535), default=8080, help="default 8080")
    review.add_argument("--host", default="127.0.0.1",
                        help="default 127.0.0.1 (this computer only); any other address requires the access token")
    review.add_argument("--series", help="SeriesInstanceUID when a DICOM folder holds several cines")
    review.add_argument("--model", help="checkpoint file (default: the shipped model)")
    review.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    review.add_argument("--height", type=float, help="patient height in cm (overrides the input's)")
    review.add_argument("--weight", type=float, help="patient weight in kg (overrides the input's)")
    review.add_argument("--sex", help="patient sex M, F or O (overrides the input's; picks the reference ranges)")
    review.add_argument("--age", type=float, help="patient age in years (overrides the input's)")
    review.add_argument("--bsa", choices=("mosteller", "dubois"),
                        help="BSA formula for a study segmented first (default mosteller); a run keeps its own")
    review.set_defaults(run=_review)

    from cmrseg.train import add_train_arguments

    add_train_arguments(commands.add_parser("train", help="train the dense U-Net on ACDC ED/ES frames (resumable)"))
    return parser


def _send(args: argparse.Namespace) -> int:
    from cmrseg.pacs import files_to_send, parse_address, send_files
    from cmrseg.progress import LinePrinter

    host, port = parse_address(args.pacs)
    files = files_to_send(args.input)  # every file read and checked before anything is sent
    results = send_files(files, host, port, args.called_aet, args.calling_aet, LinePrinter())
    for outgoing, result in zip(files, results, strict=True):
        remark = f" (warning {result['warning']})" if "warning" in result else ""
        print(f"stored {outgoing.path.name} ({outgoing.modality or 'DICOM'}, {outgoing.sop_instance_uid}){remark}")
    print(f"{len(results)} of {len(results)} files stored on {args.called_aet} at {host}:{port}")
    return 0


def _review(args: argparse.Namespace) -> int:
    try:
        from CMRSegWeb.Serve import serve
    except ImportError as exc:
        raise CMRSegError(f"The browser review needs trame-slicer: pip install 'cmrseg[review]' ({exc}).") from exc
    return serve(args)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """Warnings as one ``cmrseg: warning:`` line, without the source line that raised them."""
    print(f"cmrseg: warning: {message}", file=file or sys.stderr)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (callers and tests may replace it between runs)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = {"WARNING": "cmrseg: warning: ", "ERROR": "cmrseg: error: "}.get(record.levelname, "")
        return prefix + record.getMessage()


def main(argv: list[str] | None = None) -> int:
    import warnings

    from cmrseg.outputs import terminate_as_interrupt

    args = build_parser().parse_args(argv)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    # Our own progress notes at INFO; other libraries' (highdicom lists every attribute it copies) only when
    # they warn, or with --verbose.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[handler], force=True)
    for ours in ("cmrseg", "CMRSegWeb"):
        logging.getLogger(ours).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    warnings.showwarning = _one_line_warning
    restore = terminate_as_interrupt()
    try:
        return args.run(args)
    except CMRSegError as exc:
        print(f"cmrseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cmrseg: interrupted; nothing was written", file=sys.stderr)
        return 130
    except OSError as exc:  # a file the user named that the system refused (permissions, full disk, ...)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"cmrseg: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except MemoryError:
        print("cmrseg: error: out of memory; the input is too large for this machine", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback with --verbose
        if args.verbose:
            raise
        print(f"cmrseg: internal error: {type(exc).__name__}: {exc} (rerun with -v for details and report it)",
              file=sys.stderr)
        return 1
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
