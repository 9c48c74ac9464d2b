"""What the hostile-input tests share: running a command that must be refused, and a writable copy of the
phantom's cine."""

from __future__ import annotations

from cmrseg.cli import main
from cmrseg.io.study import Study

ACDC_ED = "patient001/patient001_frame01.nii.gz"


def refused(capsys, *args) -> str:
    """Run ``cmrseg segment`` (output in the last argument's folder) and return its one error line."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("PROGRESS")]
    assert code == 2, err
    assert lines[-1].startswith("cmrseg: error: "), err
    assert "Traceback" not in err
    return lines[-1]


def segment_refused(capsys, tmp_path, *inputs, extra=()) -> str:
    message = refused(capsys, "segment", *inputs, "--out", tmp_path / "out", *extra)
    assert not (tmp_path / "out").exists(), "a refused run must write nothing"
    return message


def cine_copy(oblique_phantom) -> Study:
    study = oblique_phantom.study
    return Study(image=study.image.copy(), spacing=study.spacing, origin=study.origin, direction=study.direction,
                 frame_times_ms=study.frame_times_ms)
