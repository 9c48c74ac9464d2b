"""Segmentation of study frames with a trained dense U-Net, on CUDA when available, else the CPU.

Each frame goes slice by slice through the network in batches on the pre-processing grid (fixed spacing
and size), and the class probabilities come back to the native grid. The crop is first centred on the
image; when the heart found there lies off-centre, every frame is segmented again centred on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from cmrseg.errors import CMRSegError
from cmrseg.io.study import Study
from cmrseg.labels import BACKGROUND, LV, RV
from cmrseg.model import load_model
from cmrseg.model.ensemble import Ensemble
from cmrseg.neighbours import context_of, with_neighbours
from cmrseg.orientation import InPlaneTransform, to_training_orientation
from cmrseg.postprocess import clean_labels
from cmrseg.preprocess import PreprocessConfig, preprocess_frame, to_native_probabilities
from cmrseg.progress import ProgressCallback, report
from cmrseg.review import FrameEvidence, slice_entropy
from cmrseg.shipped import default_model_path
from cmrseg.training.split import file_sha256

log = logging.getLogger(__name__)

RECENTRE_MM = 10.0  # re-segment centred on the heart when it lies further than this from the crop centre
MIN_LV_ML = 2.0  # below this at every frame, no heart was found
# The heart's RV lies beside the LV. In the 100 ACDC hearts (on which the networks were trained, or validated and
# tested), the first network finds it on 0.62-1.14 of the LV's slices at ED as stored, and on at most 0.44 of
# them mirrored; at ES on 0.43-1.20 as stored (two hearts below RV_BESIDE_LV) and at most 0.44
# mirrored, but for one heart with the LV on only 3 slices (2 of 3). With found_only_mirrored's rule, none of
# the 200 frames as stored is taken mirrored, and the mirrored frames are all taken back at ED, 96 at ES.
RV_BESIDE_LV = 0.5
MIRRORED_MIN_LV_SLICES = 3


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise CMRSegError(f"Unknown device {device!r}; use auto, cpu or cuda.") from exc
    if resolved.type not in ("cpu", "cuda"):
        raise CMRSegError(f"Unknown device {device!r}; use auto, cpu or cuda.")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CMRSegError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto.")
    return resolved


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (the networks train in it on a GPU); inference runs in fp32
    elsewhere."""
    return gpu_has_bf16() if device.type == "cuda" else cpu_has_fast_bf16()


def arithmetic(device: torch.device, bf16: bool) -> str:
    """Where and in what precision a network runs: ``cpu fp32``, ``cuda bf16``."""
    return f"{device.type} {'bf16' if bf16 else 'fp32'}"


def _epochs_text(records: list[dict]) -> str:
    """Which epoch's network each of a model's networks is, of how many the run trained: ``epoch 38 of 60``,
    ``epochs 38+56+50 of 60`` (best.pt holds the network of the best validation epoch, not the last)."""
    best = [record.get("best_epoch") for record in records]
    planned = list(dict.fromkeys(record.get("epochs") for record in records))
    if not records or None in best or None in planned:  # an older checkpoint: how many epochs it had trained
        trained = [record.get("epochs_trained") for record in records]
        return "epochs not recorded" if not records or None in trained else f"{'+'.join(map(str, trained))} epochs"
    return (f"epoch{'s' if len(best) > 1 else ''} {'+'.join(map(str, best))} of "
            f"{'+'.join(str(record['epochs']) for record in records) if len(planned) > 1 else planned[0]}")


def gpu_has_bf16() -> bool:
    """Whether the GPU computes bfloat16 natively (Ampere and later); older ones run in float32."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch before 2.3 has no including_emulation
        return bool(torch.cuda.is_bf16_supported())


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 / AMX). Without it, bf16 autocast is emulated
    and measured ~7x slower than float32 (AMD EPYC without avx512_bf16), so inference stays in float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass
class Segmenter:
    """A loaded network with its pre-processing and run settings."""

    model: torch.nn.Module
    metadata: dict
    device: torch.device
    config: PreprocessConfig
    bf16: bool = False  # bfloat16 autocast; load() turns it on where bf16 is native (a recent GPU, some CPUs)
    batch_size: int = 16
    # Weighted cross-entropy trains the network to output probabilities scaled by the class weights, which
    # inflates the up-weighted classes; dividing by the weights restores the unweighted decision. A shipped
    # checkpoint says whether to (chosen on the validation split: metadata "inference").
    prior_correction: bool = False
    source: str = ""
    model_sha256: str = ""  # of the checkpoint file as loaded: recorded with every result (which weights made it)
    timings: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "auto", **options) -> Segmenter:
        path = Path(path) if path is not None else default_model_path()
        if not path.is_file():
            raise CMRSegError(f"Model file {path} not found. Give a trained checkpoint with --model.")
        torch_device = resolve_device(device)
        sha256 = file_sha256(path)  # read next to the load, not when a result is written (the file may change)
        model, metadata = load_model(path, torch_device)
        if torch_device.type == "cpu":
            model = model.to(memory_format=torch.channels_last)
        config = PreprocessConfig.from_dict(metadata.get("preprocessing", {}))
        options.setdefault("prior_correction", bool(metadata.get("inference", {}).get("prior_correction", False)))
        if options.get("bf16") is None:
            options["bf16"] = native_bf16(torch_device)
        return cls(model, metadata, torch_device, config, source=str(path), model_sha256=sha256, **options)

    @property
    def description(self) -> str:
        arch = self.metadata.get("architecture", {})
        training = self.metadata.get("training", {})
        if arch.get("name") == "ensemble":
            network = f"ensemble of {len(arch.get('args', {}).get('members', []))} dense U-Nets"
            records = training.get("members") or []
        else:
            network = "dense U-Net"
            records = [training]
        return (
            f"{Path(self.source).name} ({network}, preset {arch.get('preset')}, {_epochs_text(records)}, "
            f"cmrseg {self.metadata.get('cmrseg_version', '?')})"
        )

    @property
    def networks(self) -> list[torch.nn.Module]:
        """The networks whose probabilities are averaged (the members of an ensemble, or the one network)."""
        return list(self.model.members) if isinstance(self.model, Ensemble) else [self.model]

    @torch.inference_mode()
    def member_probabilities(self, slices: np.ndarray, networks: list[torch.nn.Module] | None = None) -> np.ndarray:
        """Softmax probabilities ``[m, n, C, h, w]`` of each of the ``m`` networks for the slices ``[n, h, w]``
        of one stack (a 2.5-D network reads each with its neighbours in it).

        Their mean is the model's output; their disagreement is evidence for the review score.
        """
        networks = networks or self.networks
        inputs = {k: with_neighbours(slices, k) for k in {context_of(net) for net in networks}}
        outputs = []
        for start in range(0, len(slices), self.batch_size):
            outputs.append(torch.stack([self._forward(net, self._batch(inputs[context_of(net)], start))
                                        for net in networks]).cpu().numpy())
        return np.concatenate(outputs, axis=1)

    def _batch(self, inputs: np.ndarray, start: int) -> torch.Tensor:
        batch = torch.from_numpy(np.ascontiguousarray(inputs[start : start + self.batch_size])).float()
        batch = batch.to(self.device)
        return batch.contiguous(memory_format=torch.channels_last) if self.device.type == "cpu" else batch

    def corrected(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities ``[..., C, h, w]`` with the checkpoint's class-weight prior correction, when it asks."""
        weights = self.metadata.get("training", {}).get("class_weights")
        if not (self.prior_correction and weights):
            return probabilities
        shape = [1] * probabilities.ndim
        shape[-3] = len(weights)
        probabilities = probabilities / np.asarray(weights, dtype=np.float32).reshape(shape)
        return probabilities / probabilities.sum(axis=-3, keepdims=True)

    def network_probabilities(self, slices: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``[n, C, h, w]`` of pre-processed slices ``[n, h, w]`` (the members' mean)."""
        return self.corrected(self.member_probabilities(slices).mean(axis=0))

    def _forward(self, network: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)  # --fp32: off
        with autocast:
            probabilities = torch.softmax(network(batch).float(), dim=1)
        return probabilities

    def heart_labels(self, frame: np.ndarray, spacing) -> np.ndarray:
        """Cleaned labels ``[z, y, x]`` of a native frame from the first network alone (a centred crop): enough
        to locate the heart, at a third of an ensemble's cost."""
        slices, geometry = preprocess_frame(frame, spacing, self.config, None)
        probabilities = self.corrected(self.member_probabilities(slices, self.networks[:1])[0])
        return clean_labels(to_native_probabilities(probabilities, geometry).argmax(axis=1).astype(np.uint8))

    def frame_probabilities(self, frame: np.ndarray, spacing, center_yx=None) -> np.ndarray:
        """Class probabilities ``[z, C, y, x]`` of one native ``[z, y, x]`` frame."""
        return self.frame_evidence(frame, spacing, center_yx, with_evidence=False)[0]

    def frame_evidence(self, frame: np.ndarray, spacing, center_yx=None, with_evidence: bool = True
                       ) -> tuple[np.ndarray, FrameEvidence | None]:
        """The mean probabilities ``[z, C, y, x]`` of a native frame, and (when asked: it costs one resampling
        per member) what the review score needs of it."""
        slices, geometry = preprocess_frame(frame, spacing, self.config, center_yx)
        members = self.member_probabilities(slices)
        mean = to_native_probabilities(self.corrected(members.mean(axis=0)), geometry)
        if not with_evidence:
            return mean, None
        member_labels = np.stack([to_native_probabilities(self.corrected(m), geometry).argmax(axis=1)
                                  for m in members]).astype(np.uint8)
        return mean, FrameEvidence(member_labels, slice_entropy(mean), mean.argmax(axis=1).astype(np.uint8))


def heart_center(labels: np.ndarray) -> tuple[float, float] | None:
    """In-plane centroid (y, x) of all heart labels of a ``[z, y, x]`` map, or None when there are none."""
    points = np.argwhere(labels != BACKGROUND)
    return None if points.size == 0 else (float(points[:, 1].mean()), float(points[:, 2].mean()))


def lv_slices(labels: np.ndarray) -> int:
    return int((labels == LV).any(axis=(1, 2)).sum())


def rv_share(labels: np.ndarray) -> float | None:
    """The share of the slices holding the LV that hold the RV too; None without LV."""
    lv = lv_slices(labels)
    return int((labels == RV).any(axis=(1, 2)).sum()) / lv if lv else None


def rv_missing(labels: np.ndarray) -> bool:
    """Whether heart labels lack the RV beside the LV (on ``RV_BESIDE_LV`` of its slices, or no LV at all)."""
    return (rv_share(labels) or 0.0) < RV_BESIDE_LV


def found_only_mirrored(header_view: np.ndarray, mirrored_view: np.ndarray) -> bool:
    """Whether the heart labels of a frame shown mirrored hold the heart that those of the header's view miss:
    the RV beside the LV mirrored only, with the LV on at least as many slices (and
    ``MIRRORED_MIN_LV_SLICES``) and the RV on a larger share of them."""
    return (rv_missing(header_view) and not rv_missing(mirrored_view)
            and lv_slices(mirrored_view) >= max(lv_slices(header_view), MIRRORED_MIN_LV_SLICES)
            and rv_share(mirrored_view) > (rv_share(header_view) or 0.0))


@dataclass(frozen=True)
class NetworkView:
    """How a study is shown to the network: the flip or turn, its first segmented frame so shown, and that
    frame's heart labels (one network); ``mirrored`` when the heart was found only mirrored against the header."""

    turn: InPlaneTransform
    shown: np.ndarray
    heart: np.ndarray
    mirrored: bool = False


def network_view(study: Study, frame: int, segmenter: Segmenter) -> NetworkView:
    """The view of the study for the network, decided on one frame.

    The study's direction gives the training orientation (anterior up, the patient's left to the right). A
    network trained on the usual anatomy loses most of a mirrored heart (situs inversus, or pixel data stored
    mirrored against the header): in the 100 ACDC hearts shown mirrored, the first network finds the RV on at
    most 0.44 of the LV's slices at ED. So when the header's view shows no RV beside the LV, the
    frame is shown mirrored too, and that view is taken when :func:`found_only_mirrored` says so. The label
    maps always come back onto the study's grid; the quality check reports a mirrored view.
    """
    turn = to_training_orientation(study.direction)
    shown = turn.apply(study.frame(frame))
    view = NetworkView(turn, shown, segmenter.heart_labels(shown, turn.spacing(study.spacing)))
    if rv_missing(view.heart):
        mirrored = turn.mirrored()
        shown = mirrored.apply(study.frame(frame))
        heart = segmenter.heart_labels(shown, mirrored.spacing(study.spacing))
        if found_only_mirrored(view.heart, heart):
            log.warning("The network finds the RV beside the LV only with the slices mirrored: situs inversus, or "
                        "pixel data stored mirrored against the file's orientation. Segmented mirrored; check "
                        "the orientation.")
            view = NetworkView(mirrored, shown, heart, mirrored=True)
    if not view.turn.identity:
        log.info("Slices %s for the network (anterior up, left right); label maps turned back.",
                 view.turn.describe())
    return view


def segment_frames(
    study: Study,
    frames: list[int],
    segmenter: Segmenter,
    progress: ProgressCallback | None = None,
    evidence: dict[int, FrameEvidence] | None = None,
    require_lv: bool = True,
    view: NetworkView | None = None,
) -> dict[int, np.ndarray]:
    """Label maps ``[z, y, x]`` (ACDC labels, cleaned) of the given frames, on the study's native grid.

    When ``evidence`` is a dict, it receives each frame's :class:`cmrseg.review.FrameEvidence`. A study in whose
    frames no LV is found is refused, unless ``require_lv`` is false (an evaluation scores such a miss).
    ``view``: the study's :func:`network_view` on one of those frames (the caller's choice), by default on
    the first.
    """
    if study.num_slices < 2:
        raise CMRSegError(f"{study.source}: only {study.num_slices} slice; a short-axis stack is needed.")
    for index in frames:
        if not 0 <= index < study.num_frames:
            raise CMRSegError(f"Frame {index} is outside the study's {study.num_frames} frames.")
    if view is None:
        view = network_view(study, frames[0], segmenter)
    turn, first = view.turn, view.shown
    spacing = turn.spacing(study.spacing)
    # The heart located on the view's frame (one network, centred crop); crop around it when it is off
    # the image centre (almost every ACDC study), so that every frame is segmented once, by every network.
    centre = heart_center(view.heart)
    image_centre = ((first.shape[1] - 1) / 2, (first.shape[2] - 1) / 2)
    recentre = None
    if centre is not None:
        shift_mm = np.hypot((centre[0] - image_centre[0]) * spacing[1], (centre[1] - image_centre[1]) * spacing[0])
        if shift_mm > RECENTRE_MM:
            recentre = centre
            log.info("Heart found %.0f mm off the image centre: crop re-centred on it.", shift_mm)
    wanted = evidence is not None
    results: dict[int, np.ndarray] = {}
    for done, index in enumerate(frames):
        report(progress, done, len(frames), "Segmenting frames")
        probabilities, found = segmenter.frame_evidence(turn.apply(study.frame(index)), spacing, recentre, wanted)
        results[index] = turn.undo(clean_labels(probabilities.argmax(axis=1).astype(np.uint8)))
        if evidence is not None:
            evidence[index] = replace(found, member_labels=turn.undo(found.member_labels),
                                      raw_labels=turn.undo(found.raw_labels))
    report(progress, len(frames), len(frames), "Segmenting frames")
    lv_ml = max(float((labels == LV).sum()) * study.voxel_volume_ml for labels in results.values())
    if require_lv and lv_ml < MIN_LV_ML:
        raise CMRSegError(
            f"No left ventricle was found in {study.source or 'the study'} (largest LV blood pool {lv_ml:.1f} ml). "
            "Check that the input is a short-axis cine covering the heart."
        )
    return results


def lv_volume_curve(labels_by_frame: dict[int, np.ndarray], voxel_ml: float) -> dict[int, float]:
    return {index: float((labels == LV).sum()) * voxel_ml for index, labels in labels_by_frame.items()}


def choose_ed_es(curve: dict[int, float]) -> tuple[int, int]:
    """ED = frame of largest, ES = frame of smallest LV blood-pool volume."""
    frames = sorted(curve)
    volumes = np.array([curve[f] for f in frames])
    return frames[int(volumes.argmax())], frames[int(volumes.argmin())]
