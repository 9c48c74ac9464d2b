"""Learning-rate schedule defined by the total number of steps: linear warm-up, then cosine decay."""

from __future__ import annotations

import functools
import math

import torch

FINAL_FRACTION = 0.01  # the learning rate ends at 1 % of its peak


def lr_factor(step: int, total_steps: int, warmup_steps: int, final_fraction: float = FINAL_FRACTION) -> float:
    """Multiplier of the peak learning rate at optimiser ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler (call ``step()`` after every optimiser step)."""
    factor = functools.partial(lr_factor, total_steps=total_steps, warmup_steps=warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def set_scheduled_rate(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Give the optimiser the rate of the scheduler's current step, as its own ``step()`` would have (for a
    resumed run whose total, and so whose schedule, changed)."""
    for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas,
                                   strict=True):
        group["lr"] = base * factor(scheduler.last_epoch)
