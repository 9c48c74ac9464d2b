"""Self-describing model checkpoints, loaded without executing pickled code.

A checkpoint file is ``torch.save`` of a plain dict::

    {"format": "cmrseg-checkpoint", "version": 1,
     "metadata": "<JSON text>",            # architecture, labels, preprocessing, training, metrics, ...
     "state_dict": {name: tensor, ...}}    # float32 CPU tensors

and is read with ``torch.load(..., weights_only=True)``. The metadata JSON repeats ``format`` and ``version``
and holds ``architecture = {"name": "dense_unet", "preset": ..., "args": {...}}``, from which
:func:`load_model` rebuilds the network. An ensemble (``"name": "ensemble"``, ``"args": {"members": [...]}``)
holds its networks' weights under ``members.N.``.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from cmrseg import __version__
from cmrseg.errors import CMRSegError
from cmrseg.model.dense_unet import DenseUNet
from cmrseg.model.ensemble import Ensemble
from cmrseg.training.split import file_sha256

FORMAT = "cmrseg-checkpoint"
VERSION = 1
ARCHITECTURES: dict[str, type[nn.Module]] = {"dense_unet": DenseUNet, "ensemble": Ensemble}


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write through ``write(stream)`` to a temporary file in the same folder, then rename it over ``path``.

    A reader (or a resumed run after a kill) never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temp, 0o666 & ~mask)  # mkstemp makes 0600; give the usual permissions
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    return atomic_write(path, lambda stream: torch.save(obj, stream))


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers as contiguous float32 (or integer) CPU tensors."""
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        state[name] = tensor.float() if tensor.is_floating_point() else tensor.clone()
    return state


def architecture_of(model: nn.Module, preset: str | None = None) -> dict[str, Any]:
    names = {cls: name for name, cls in ARCHITECTURES.items()}
    if type(model) not in names:
        raise CMRSegError(f"Cannot describe a {type(model).__name__} in a checkpoint.")
    return {"name": names[type(model)], "preset": preset, "args": dict(model.args)}


def save_checkpoint(
    path: str | Path, model: nn.Module, metadata: dict[str, Any], preset: str | None = None, half: bool = False
) -> Path:
    """Write an inference checkpoint: ``metadata`` (JSON-serialisable) plus the model's weights.

    ``format``, ``version``, ``architecture`` and ``cmrseg_version`` are filled in here. ``half`` stores the
    floating-point weights as float16, half the file size; loading turns them back into float32 (inference
    runs in bfloat16 by default, which rounds far more than float16 storage does).
    """
    meta = {"format": FORMAT, "version": VERSION, "architecture": architecture_of(model, preset)}
    meta.update({k: v for k, v in metadata.items() if k not in meta})
    meta.setdefault("cmrseg_version", __version__)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "metadata": json.dumps(meta, indent=1, sort_keys=False),
        "state_dict": plain_state_dict(model),
    }
    if half:
        payload["state_dict"] = half_weights(payload["state_dict"])
    return atomic_save(payload, path)


def half_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The floating-point tensors as float16 (as shipped), the others as they are."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The metadata and the state dict of a checkpoint file, validated; :class:`CMRSegError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CMRSegError(f"Model file {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CMRSegError(
            f"{path} is not a CMRSeg model checkpoint (it cannot be read as plain tensors: {reason[:200]})."
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CMRSegError(f"{path} is not a CMRSeg model checkpoint (no '{FORMAT}' format marker).")
    if payload.get("version") != VERSION:
        raise CMRSegError(
            f"{path} is a CMRSeg checkpoint of format version {payload.get('version')!r}; this cmrseg "
            f"({__version__}) reads version {VERSION}. Use a matching cmrseg version or re-export the model."
        )
    try:
        metadata = json.loads(payload["metadata"])
        state = payload["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CMRSegError(f"{path} is a damaged CMRSeg checkpoint (metadata or weights missing).") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CMRSegError(f"{path} is a damaged CMRSeg checkpoint (its weights are not a dict of tensors).")
    return metadata, state


MAX_PARAMETERS = 200_000_000  # 0.8 GB of float32; the paper's network has ~30 M


def build_from_metadata(metadata: dict[str, Any], state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """A freshly initialised network of the architecture a checkpoint's metadata describes.

    The network is first built without memory (PyTorch's meta device) to count its parameters: an
    architecture larger than :data:`MAX_PARAMETERS`, or than the weights ``state`` that come with it, is
    refused before anything is allocated.
    """
    arch = metadata.get("architecture") or {}
    cls = ARCHITECTURES.get(arch.get("name"))
    if cls is None:
        raise CMRSegError(
            f"Unknown network architecture {arch.get('name')!r} in the checkpoint; this cmrseg knows "
            f"{', '.join(ARCHITECTURES)}."
        )
    args = arch.get("args", {})
    try:
        with torch.device("meta"):
            skeleton = cls(**args)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CMRSegError(f"The checkpoint's architecture arguments do not fit {arch['name']}: {exc}.") from exc
    size = sum(t.numel() for t in skeleton.state_dict().values())
    if size > MAX_PARAMETERS:
        raise CMRSegError(f"The checkpoint declares a network of {size:,} parameters (at most {MAX_PARAMETERS:,}); "
                          "it is damaged or not a CMRSeg model.")
    if state is not None and size != sum(t.numel() for t in state.values()):
        load_weights(skeleton, state)  # raises, naming the tensors that do not fit
    return cls(**args)


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``load_state_dict`` with a readable :class:`CMRSegError` when names or shapes do not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for what, names in (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong)):
            if names:
                parts.append(f"{len(names)} {what} (e.g. {', '.join(names[:3])})")
        raise CMRSegError(
            f"The weights in {source} do not match the network it describes: {'; '.join(parts)}. "
            "The file is damaged or was written by an incompatible version."
        )
    model.load_state_dict(state)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The network of a checkpoint, weights loaded, in eval mode on ``device``, and its metadata."""
    metadata, state = read_checkpoint(path)
    model = build_from_metadata(metadata, state)
    load_weights(model, state, str(path))
    return model.to(device).eval(), metadata


def combine_checkpoints(paths: list[str | Path], split_record: dict[str, str] | None = None
                        ) -> tuple[nn.Module, dict[str, Any]]:
    """An :class:`Ensemble` of the dense U-Nets in ``paths`` and its metadata.

    The members must share labels, pre-processing and training split (they are evaluated as one model);
    their training records are kept, in order, under ``training["members"]``. Networks of different splits
    (cross-validation folds) combine only with ``split_record`` (``split_file`` and ``split_sha256`` of the
    split they stand on together, from :func:`cmrseg.training.split.ensemble_split`), which the ensemble then
    records as its own.
    """
    networks, records = [], []
    for path in paths:
        model, metadata = load_model(path)
        if not isinstance(model, DenseUNet):
            raise CMRSegError(f"{path} is not a single dense U-Net; an ensemble is made of trained networks.")
        networks.append(model)
        records.append(metadata)
    first = records[0]
    for path, metadata in zip(paths[1:], records[1:], strict=True):
        for key, what in (("labels", "labels"), ("preprocessing", "pre-processing")):
            if metadata.get(key) != first.get(key):
                raise CMRSegError(f"{path} has other {what} than {paths[0]}; ensemble members must share them.")
        same_split = metadata.get("training", {}).get("split_sha256") == first.get("training", {}).get("split_sha256")
        if not same_split and split_record is None:
            raise CMRSegError(f"{path} was trained on another split than {paths[0]}.")
    training = {key: first["training"][key] for key in ("dataset", "data", "split_file", "split_sha256")
                if key in first.get("training", {})}
    training.update(split_record or {})
    training["epochs_trained"] = [m.get("training", {}).get("epochs_trained") for m in records]
    training["members"] = [dict(m.get("training", {}), source=str(p), source_sha256=file_sha256(p))
                           for m, p in zip(records, paths, strict=True)]
    metadata = {"labels": first.get("labels"), "preprocessing": first.get("preprocessing"), "training": training}
    return Ensemble.of(networks).eval(), metadata
