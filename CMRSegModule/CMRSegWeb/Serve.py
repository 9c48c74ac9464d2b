"""``cmrseg review``: check the arguments, then serve the review page until Ctrl-C.

STUDY is either a finished ``cmrseg segment`` output folder (reviewed as it is) or a study as ``cmrseg segment``
takes it, which is first segmented into ``--out`` (the same outputs as ``cmrseg segment``). Exports go to
``<run folder>/review``. Nothing names the patient in the address or in the log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cmrseg.errors import CMRSegError
from cmrseg.outputs import lock_folder
from CMRSegWeb import Access
from CMRSegWeb.RunFolder import isRunFolder, readRunFolder, runRecord

log = logging.getLogger("cmrseg")


def planReview(inputs: list[str], out: str | None) -> tuple[Path, bool]:
    """``(run folder, needs segmenting)``; refuses what cannot be reviewed before anything starts."""
    from cmrseg.outputs import check_output_folder

    if len(inputs) == 1 and isRunFolder(inputs[0]):
        if out:
            raise CMRSegError(f"{inputs[0]} is a finished run, reviewed where it is; leave out --out.")
        exports = Path(inputs[0]) / "review"
        check_output_folder(exports, f"The review's export folder {exports}")  # now, not after the review
        runRecord(Path(inputs[0]))  # a result that cannot be reviewed: refused before the address is given
        return Path(inputs[0]), False
    for path in inputs:
        if not Path(path).exists():
            raise CMRSegError(f"{path} does not exist.")
    if not out:
        raise CMRSegError("Give --out DIR: the study is segmented there first (as cmrseg segment does).")
    check_output_folder(out)
    if isRunFolder(out):
        raise CMRSegError(f"{out} already holds a result; review it with: cmrseg review {out}")
    return Path(out), True


def serve(args) -> int:
    """Serve the review of ``args.input`` on ``args.host:args.port``."""
    from cmrseg.validate import check_height_weight, check_sex_age

    check_height_weight(args.height, args.weight)
    check_sex_age(args.sex, args.age)
    host = Access.checkedHost(args.host)
    runFolder, segmentFirst = planReview(args.input, args.out)
    if args.bsa and not segmentFirst:
        raise CMRSegError(f"{runFolder} is reviewed with the BSA formula it was made with; leave out --bsa.")
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # headless: no X server
    # one review of a run at a time: a second one's export would drop the first one's corrections
    created = not runFolder.exists()
    exports = runFolder / "review"
    exports.mkdir(parents=True, exist_ok=True)
    lock = lock_folder(exports, busy=f"{runFolder} is under review already (another cmrseg review serves it): "
                                     "use that page, or stop that review first.")
    try:
        return _serve(args, host, runFolder, segmentFirst)
    finally:
        os.close(lock)
        for folder in (exports, runFolder) if created else (exports,):  # nothing left that holds nothing
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _serve(args, host: str, runFolder: Path, segmentFirst: bool) -> int:
    """Serve until Ctrl-C; the study is segmented first (``segmentFirst``) and loaded when the page opens."""

    def prepare(progress):
        if segmentFirst:
            _segment(args, runFolder, progress)
        progress(0, 1, "Loading the study and the result")
        study, result = readRunFolder(runFolder, args.series, args.height, args.weight, progress, args.sex, args.age)
        name = study.description or "CMRSeg"
        return study, result, name, runFolder / "review"

    for name in ("trame", "trame_server", "trame_client", "trame_rca", "trame_slicer", "wslink", "aiohttp"):
        logging.getLogger(name).setLevel(logging.WARNING)  # their progress lines are not the user's business
    from CMRSegWeb.ReviewApp import ReviewApp

    app = ReviewApp(prepare)
    token = Access.newToken()
    app.server.controller.on_server_bind.add(
        lambda webServer: webServer.app.middlewares.append(Access.tokenMiddleware(token, Access.cookieName(args.port))))
    shown = "127.0.0.1" if host == "localhost" else f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{args.port}/?token={token}"
    if Access.isLoopback(host):
        print(f"CMRSeg review at {address} (this computer only; --host to serve others)", flush=True)
    else:
        print(f"CMRSeg review at {address}\n"
              f"(listening on {host}: other computers can connect; the address works only with this token)",
              flush=True)
    # timeout=0: the server keeps the corrections when the last browser tab closes (wslink stops after 5 min)
    app.server.start(host=host, port=args.port, open_browser=False, show_connection_info=False,
                     disable_logging=True, timeout=0)
    return 0


def _segment(args, out: Path, progress) -> None:
    from cmrseg.inference import Segmenter
    from cmrseg.segment import run_segment

    progress(0, 1, "Loading the model")
    segmenter = Segmenter.load(args.model, device=args.device)
    run_segment(args.input, out, segmenter, series_uid=args.series, height_cm=args.height, weight_kg=args.weight,
                progress=progress, sex=args.sex, age_years=args.age, bsa_method=args.bsa or "mosteller")
    log.info("segmented into %s", out)

