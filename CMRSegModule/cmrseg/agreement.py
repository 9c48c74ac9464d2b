"""Agreement between two sets of clinical parameters: Pearson R^2 and Bland-Altman bias +- 2 SD."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cmrseg.errors import CMRSegError


@dataclass
class Agreement:
    n: int
    r2: float
    bias: float  # mean of (method - reference)
    sd: float  # standard deviation of the differences (ddof = 1)
    lower: float  # bias - 2 SD
    upper: float  # bias + 2 SD

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self, unit: str = "") -> str:
        return f"R^2 {self.r2:.2f}, bias {self.bias:+.1f} +- {2 * self.sd:.1f}{(' ' + unit) if unit else ''}"


def agreement(method: np.ndarray, reference: np.ndarray) -> Agreement:
    method, reference = np.asarray(method, float), np.asarray(reference, float)
    if method.shape != reference.shape or method.ndim != 1:
        raise CMRSegError(f"Agreement needs two 1D series of equal length; got {method.shape} and {reference.shape}.")
    keep = np.isfinite(method) & np.isfinite(reference)
    method, reference = method[keep], reference[keep]
    if method.size < 3:
        raise CMRSegError(f"Agreement needs at least 3 cases with both values; got {method.size}.")
    diff = method - reference
    r = np.corrcoef(method, reference)[0, 1] if np.std(method) > 0 and np.std(reference) > 0 else float("nan")
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    return Agreement(int(method.size), float(r * r), bias, sd, bias - 2 * sd, bias + 2 * sd)


def plot_agreement(method, reference, title: str, unit: str, path: str | Path) -> Path:
    """Correlation (left) and Bland-Altman (right) plots side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    method, reference = np.asarray(method, float), np.asarray(reference, float)
    result = agreement(method, reference)
    both = np.isfinite(method) & np.isfinite(reference)  # the pairs the statistics use
    method, reference = method[both], reference[both]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    low, high = min(method.min(), reference.min()), max(method.max(), reference.max())
    left.scatter(reference, method, s=14)
    left.plot([low, high], [low, high], "k--", linewidth=0.8)
    left.set(xlabel=f"reference ({unit})", ylabel=f"method ({unit})", title=f"{title}: R$^2$ = {result.r2:.2f}")
    mean, diff = (method + reference) / 2, method - reference
    right.scatter(mean, diff, s=14)
    for value, style in ((result.bias, "-"), (result.lower, "--"), (result.upper, "--")):
        right.axhline(value, color="k", linestyle=style, linewidth=0.8)
    right.set(xlabel=f"mean ({unit})", ylabel=f"difference ({unit})",
              title=f"bias {result.bias:+.1f} $\\pm$ {2 * result.sd:.1f} {unit}")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
