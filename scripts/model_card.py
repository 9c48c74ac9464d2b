"""The model card of a shipped model (``<model>.md``), written by ``scripts/ship-model``: data, split, how every
network was trained, the held-out tables, and the candidates it was chosen from."""

from __future__ import annotations

import csv
import hashlib
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from cmrseg import phantom_check
from cmrseg.error_regions import error_region_markdown
from cmrseg.evaluate import distance_cell
from cmrseg.evaluate_groups import group_markdown
from cmrseg.inference import default_model_path
from cmrseg.model.checkpoint import read_checkpoint
from cmrseg.training.split import file_sha256, make_fold_splits, read_split

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "acdc"
SHIPPED_SPLIT = "CMRSegModule/Resources/Models/cmrseg_dense_unet.split.json"
FOLD_VALIDATION = SHIPPED_SPLIT  # the validation part of the folds
LEVERS = Path(__file__).with_name("model_levers.md")  # every lever measured, kept or not (kept by hand)
CITATION = ("Bernard et al., \"Deep Learning Techniques for Automatic MRI Cardiac Multi-Structures Segmentation "
            "and Diagnosis: Is the Problem Solved?\", IEEE TMI 37(11):2514-2525, 2018")


def mean_dice(results: dict, criterion: str = "50") -> dict[str, float]:
    return {r["structure"]: r["dice_mean"] for r in results["table1"]
            if r["method"] == "FCN" and r["criterion"] == criterion and r["phase"] == "ED+ES"}


def sunnybrook_text(results: dict | None) -> str:
    """LV Dice ED / ES, Myo Dice ED and RV EF with its quality check, per Sunnybrook study."""
    if not results:
        return "-"
    return "; ".join(f"{r['lv_dice_ed']:.3f} / {r['lv_dice_es']:.3f} / {r['myo_dice_ed']:.3f}, "
                     f"RV EF {r['rv_ef_pct']:.0f} % {r['qc']}" for r in results.values())


def example_text(result: dict) -> str:
    """LV and RV EF on the built-in example against the analytic ones, and whether it passed (scripts/example)."""
    if "error" in result:
        return "not segmented"
    ef = {r["parameter"]: r for r in result["parameters"]}
    verdict = "pass" if phantom_check.passed(result) else "fail"
    return (f"EF {ef['lv_ef_pct']['cmrseg']:.1f} / {ef['rv_ef_pct']['cmrseg']:.1f} % "
            f"(truth {ef['lv_ef_pct']['truth']:.1f} / {ef['rv_ef_pct']['truth']:.1f}), {verdict}")


def best_validation_epoch(run: Path, training: dict) -> dict:
    """The history row of the epoch whose network the run's best.pt holds (as training chose it, at full
    precision: the CSV's rounded values may tie), with the epochs and hours the run trained."""
    with open(run / "history.csv") as stream:
        rows = list(csv.DictReader(stream))
    chosen = [r for r in rows if int(r["epoch"]) == training.get("best_epoch")]
    best = chosen[0] if chosen else max(rows, key=lambda r: float(r["dice_mean"]))  # a run of before the record
    return {"epoch": int(best["epoch"]), "epochs": len(rows), "seconds": sum(float(r["epoch_seconds"]) for r in rows),
            **{k: float(best[k]) for k in ("dice_LV", "dice_RV", "dice_Myo", "dice_mean")}}


def machine_text(machine: dict) -> str:
    """Where a network trained, as its record says: the GPU when it trained on one, else the CPU."""
    host = f"{machine['cpu_count']}-core {machine['processor']}"
    if machine.get("gpu"):
        return f"an {machine['gpu']} GPU ({host} host, torch {machine['torch']})"
    return f"a {machine['cpu_count']}-core CPU ({machine['processor']}, torch {machine['torch']})"


def is_ensemble(item: dict) -> bool:
    return item["metadata"]["architecture"]["name"] == "ensemble"


def networks(item: dict) -> int:
    """How many networks a candidate runs per slice (its network time grows with it)."""
    return len(item["metadata"]["architecture"]["args"]["members"]) if is_ensemble(item) else 1


def member_runs(item: dict) -> list[Path]:
    """The training runs behind a candidate: each member's best.pt lies in its run folder."""
    if not is_ensemble(item):
        return [item["run"]]
    return [Path(member["source"]).parent for member in item["metadata"]["training"]["members"]]


def augmentation_name(training: dict) -> str:
    """The augmentation setting, with the oversampling and the fine-tuning start when the run had them."""
    config = training["config"]
    words = [config.get("augmentation", "standard")]
    words += [f"oversampling {config['oversample']}"] if config.get("oversample") else []
    words += [f"fine-tuned from network {config.get('init_member') or 0}"] if config.get("init") else []
    words += [f"distilled (weight {config['distil_weight']})"] if config.get("distil_from") else []
    return ", ".join(words)


def input_text(configs: list[dict]) -> str:
    """The network input, with the neighbour slices of 2.5-D networks (``--neighbour-slices``)."""
    contexts = sorted({config.get("neighbour_slices", 0) for config in configs})
    if contexts == [0]:
        return "input 176 x 176 pixels at 1.5 mm"
    return ("input 176 x 176 pixels at 1.5 mm, each slice with " + " or ".join(map(str, contexts))
            + " neighbour slices on each side as channels (2.5-D)")


def with_split(command: str, split: str) -> str:
    """A recorded training command naming ``split`` as its ``--split`` (a command recorded before commands
    named their split, or naming the run folder's copy of it)."""
    words = shlex.split(command)
    if "--split" in words:
        del words[words.index("--split"):words.index("--split") + 2]
    out = words.index("--out")
    return shlex.join([*words[:out], "--split", split, *words[out:]])


def training_lines(item: dict) -> list[str]:
    """How the shipped network(s) were trained: one run, or a table of the ensemble's members."""
    if not is_ensemble(item):
        training = item["metadata"]["training"]
        history = best_validation_epoch(item["run"], training)
        return [
            f"- Architecture: dense U-Net, preset `{item['metadata']['architecture']['preset']}` "
            f"({training['parameters']:,} parameters); {input_text([training['config']])}, 4 classes.",
            f"- Loss: {training['loss']}; class weights {training['class_weighting']}; "
            f"augmentation {augmentation_name(training)}; {training['optimizer']}; {training['schedule']}; "
            f"{training['precision']}.",
            f"- Epochs: {history['epochs']} trained; best validation epoch {training['best_epoch']} "
            f"(mean validation Dice {history['dice_mean']:.3f} on the pre-processed grid).",
            f"- Training time: {history['seconds'] / 3600:.2f} h on {machine_text(training['machine'])}.",
            f"- Command: `{with_split(training['command'], SHIPPED_SPLIT).replace('OUT', 'runs/' + item['run'].name)}`",
            *origin_lines(item["run"], training),
        ]
    members = item["metadata"]["training"]["members"]
    first = members[0]
    lines = [
        f"- Architecture: an ensemble of {len(members)} dense U-Nets, preset `{first['config']['preset']}` "
        f"({first['parameters']:,} parameters each); the mean of their class probabilities is the output. "
        f"{input_text([m['config'] for m in members]).capitalize()}, 4 classes; weights stored as float16.",
        f"- Every member: {first['optimizer']}; {first['schedule']}; {first['precision']}; trained on "
        f"{' or '.join(dict.fromkeys(machine_text(m['machine']) for m in members))} with the torch threads given "
        "in the table.",
        "",
        "| member | loss | class weights | augmentation | epochs | best epoch (val. Dice) | training time "
        "(threads) | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    count, folds = fold_files(item)
    for run, training in zip(member_runs(item), members, strict=True):
        history = best_validation_epoch(run, training)
        split = folds[run] if folds else SHIPPED_SPLIT
        command = with_split(training["command"], split).replace("OUT", "runs/" + run.name)
        lines.append(f"| {run.name} | {training['loss']} | {training['class_weighting'].split(' ')[0]} "
                     f"| {augmentation_name(training)} | {history['epochs']} "
                     f"| {training['best_epoch']} ({history['dice_mean']:.3f}) | {history['seconds'] / 3600:.2f} h "
                     f"({training['machine']['torch_threads']}) "
                     f"| `{command}` |")
    lines.append("")
    if folds:
        lines += [f"The members' splits: `scripts/make-folds ../shared/data/acdc runs/folds --folds {count} "
                  f"--seed {item['split'].get('seed')} --validation-from {FOLD_VALIDATION}` writes them (the "
                  "shipped split's validation part is the same); `scripts/train-folds` trains every member as "
                  "the table says.", ""]
    for run, training in zip(member_runs(item), members, strict=True):
        lines += origin_lines(run, training)
    return lines + [""]


def fold_files(item: dict) -> tuple[int, dict[Path, str]]:
    """For an ensemble of cross-validation folds: the number of folds, and each member run's split as the file
    ``scripts/make-folds`` writes for it (found by its parts), or the run's own split.json when it would not."""
    split = item["split"]
    if "member_test" not in split:
        return 0, {}
    runs = member_runs(item)
    first = read_split(runs[0] / "split.json")
    count = round((len(first["train"]) + len(first["test"])) / max(len(first["test"]), 1))  # parts differ by <= 1
    folds = make_fold_splits(DATA, folds=count, seed=split.get("seed", 0), validation=split["val"])
    files = {}
    for run in runs:
        own = read_split(run / "split.json")
        parts = [k for k, fold in enumerate(folds)
                 if all(sorted(fold[part]) == sorted(own.get(part, [])) for part in ("train", "val", "test"))]
        files[run] = f"runs/folds/fold{parts[0]}.json" if parts else f"{run}/split.json"
    return count, files


def starting_checkpoint(init: str, sha256: str, scratch: Path, what: str = "starting checkpoint") -> tuple[Path, str]:
    """The file a fine-tuned run started from, or the ``what`` a run used (by its recorded sha256), and the git
    commit that holds it: the file itself while unchanged, else the committed version that matches (shipping
    replaces the file)."""
    path = REPO / init if not Path(init).is_absolute() else Path(init)
    if path.is_file() and file_sha256(path) == sha256:
        commit = git("log", "-1", "--format=%h", "--", init)
        return path, commit
    for commit in git("log", "--format=%h", "--", init).split():
        blob = subprocess.run(["git", "show", f"{commit}:{init}"], cwd=REPO, capture_output=True).stdout
        if hashlib.sha256(blob).hexdigest() == sha256:
            copy = scratch / f"start-{commit}.pt"
            copy.write_bytes(blob)
            return copy, commit
    sys.exit(f"ship-model: the {what} {init} (sha256 {sha256[:16]}...) is neither the file there "
             "nor any committed version of it.")


def git(*words: str) -> str:
    return subprocess.run(["git", *words], cwd=REPO, capture_output=True, text=True).stdout.strip()


def fine_tuning_line(run: Path, training: dict) -> str | None:
    """Where a fine-tuned network's starting weights came from (file, commit, sha256) and how those were trained."""
    init, member = training["config"].get("init"), training["config"].get("init_member") or 0
    if not init:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        path, commit = starting_checkpoint(init, training["init_sha256"], Path(scratch))
        start, _ = read_checkpoint(path)
    record = start["training"]["members"][member] if start["architecture"]["name"] == "ensemble" else start["training"]
    where = f"`{init}` as of commit {commit}" if commit else f"`{init}`"
    source = Path(record["source"]).parent.name if "source" in record else "OUT"
    command = record["command"].replace("OUT", "runs/" + source)
    return (f"- `{run.name}` was fine-tuned from network {member} of {where} (sha256 "
            f"{training['init_sha256'][:16]}...), itself trained on the same split for {record['epochs']} epochs "
            f"(best validation epoch {record['best_epoch']}) by `{command}`.")


def distillation_line(run: Path, training: dict) -> str | None:
    """Which trained model a distilled network learned the probabilities of (file, commit, sha256)."""
    teacher = training["config"].get("distil_from")
    if not teacher:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        _, commit = starting_checkpoint(teacher, training["teacher_sha256"], Path(scratch), "distillation teacher")
    where = f"`{teacher}` as of commit {commit}" if commit else f"`{teacher}`"
    return (f"- `{run.name}` learned the probabilities of {where} (sha256 {training['teacher_sha256'][:16]}...), "
            f"that term {training['config']['distil_weight']} of its loss and the expert labels the rest.")


def origin_lines(run: Path, training: dict) -> list[str]:
    """What a run started from and learned from besides the expert labels (fine-tuning, distillation)."""
    return [line for line in (fine_tuning_line(run, training), distillation_line(run, training)) if line]


def held_out(item: dict) -> tuple[dict, str]:
    """A candidate's held-out results and what they are: its test patients, or for cross-validation folds the
    tables over every fold's test patients, each segmented by the one member not trained on it."""
    if item["test"] is not None:  # named: two candidates' test patients are the same only with the same split
        return item["test"], f"{len(item['split']['test'])} test ({item['run'].name})"
    patients = len({case["patient"] for case in item["cross_validation"]["cases"]})
    return item["cross_validation"], f"{patients} cross-validated (single members)"


def split_line(split: dict, name: str) -> str:
    parts = f"seed {split.get('seed')} (`{name}`)"
    if split.get("test"):
        return (f"- Split: by patient, {len(split['train'])}/{len(split['val'])}/{len(split['test'])} "
                f"(train/validation/test), stratified by pathology group, {parts}.")
    return (f"- Split: cross-validation around one validation part, by patient, stratified by pathology group, "
            f"{parts}. The {len(split['val'])} validation patients are trained on by no member: they chose every "
            f"member's best epoch and this model among the candidates. The other {len(split['train'])} are dealt "
            "into test parts; each member is trained on all of them but one part, and tests that part "
            f"({sum(map(len, split['member_test']))} patients tested in all).")


def dice_table(table1: list[dict]) -> list[str]:
    rows = {(r["phase"], r["structure"]): r for r in table1 if r["method"] == "FCN" and r["criterion"] == "50"}
    lines = ["| phase | structure | Dice mean +- SD | HD 3D median (mm) | HD 2D median (mm) | HD95 median (mm) | Se |",
             "|---|---|---|---|---|---|---|"]
    for phase in ("ED", "ES", "ED+ES"):
        for structure in ("LV", "RV", "Myo"):
            r = rows[(phase, structure)]
            lines.append(f"| {phase} | {structure} | {r['dice_mean']:.3f} +- {r['dice_sd']:.3f} "
                         f"| {distance_cell(r, 'hd_median_mm')} | {r['hd_2d_median_mm']:.1f} "
                         f"| {distance_cell(r, 'hd95_median_mm')} | {r['sensitivity_mean']:.3f} |")
    return lines


def parameter_table(table3: list[dict]) -> list[str]:
    lines = ["| parameter | R^2 | bias +- 2 SD |", "|---|---|---|"]
    for r in table3:
        if r["method"] == "FCN" and r["criterion"] == "50":
            lines.append(f"| {r['parameter']} | {r['r2']:.3f} | {r['bias']:+.1f} +- {2 * r['sd']:.1f} {r['unit']} |")
    return lines


def region_section(results: dict, which: str) -> list[str]:
    """Where the held-out errors lie: along the long axis, and by pathology group."""
    return ["", f"## Where the errors lie ({which}, basal rule >= 50 %)", "",
            error_region_markdown(results["regions"]).rstrip(), "", group_markdown(results["groups"]).rstrip()]


def held_out_sections(shipped: dict) -> list[str]:
    """The test tables, or for cross-validation folds the cross-validated tables and the ensemble's own
    tables on the validation patients."""
    results, _ = held_out(shipped)
    patients = len({c["patient"] for c in results["cases"]})
    if shipped["test"] is not None:
        return [f"## Test patients ({patients} patients, ED and ES: {2 * patients} volumes), basal rule >= 50 %", "",
                *dice_table(results["table1"]), "",
                "## Clinical parameters against the expert masks (test patients, basal rule >= 50 %)", "",
                *parameter_table(results["table3"]), *region_section(results, "test patients")]
    validation = shipped["validation_results"]
    members = len(shipped["split"]["member_test"])
    return [
        f"## Cross-validated estimate ({patients} patients, ED and ES: {2 * patients} volumes), basal rule >= 50 %",
        "",
        "Each patient is segmented by the one member that was not trained on it (its float16 weights as shipped), "
        "so this is the held-out result of a single member network. The ensemble of its "
        f"{members} members has been trained on every one of these patients and cannot be measured on them; its "
        "own result on patients none of its members has seen follows below. The training recipe was chosen "
        "earlier on a 70/15/15 split whose 15 test patients are among these, which may make this estimate lean "
        "slightly optimistic.",
        "", *dice_table(results["table1"]), "",
        "## Clinical parameters against the expert masks (cross-validated, basal rule >= 50 %)", "",
        *parameter_table(results["table3"]), *region_section(results, "cross-validated"), "",
        f"## The shipped ensemble on the validation patients ({len(shipped['split']['val'])} patients, ED and ES), "
        "basal rule >= 50 %", "",
        "No member was trained on them, but they chose each member's best epoch and this model among the "
        "candidates, so these tables lean optimistic.", "",
        *dice_table(validation["table1"]), "", *parameter_table(validation["table3"]),
    ]


ARITHMETIC_NOTE = ("Every table is computed in fp32, as any machine computes it; `cmrseg segment` runs bf16 where a "
                   "machine has it natively (recent GPUs, some CPUs), which moved a test case's Dice by up to "
                   "0.002 for the ensemble shipped on 2026-11-28.")


def inference_line(item: dict) -> str:
    return (f"- Inference: class-weight prior correction {'on' if item['prior_correction'] else 'off'} "
            f"({correction_reason(item)}); largest component per structure; LV holes filled.")


def correction_reason(item: dict) -> str:
    """Why the class-weight prior correction is on or off: chosen on the validation patients only where the
    network was trained with unequal class weights (ship-model tries both then)."""
    if is_ensemble(item):
        return "never for an ensemble: each member was trained with its own class weights"
    if len(set(item["metadata"]["training"].get("class_weights") or [])) <= 1:
        return "trained without class weights: nothing to correct"
    return "chosen on the validation patients, see below"


def reproduce_line(shipped: dict) -> str:
    if shipped["test"] is not None:
        return ("Reproduce the test tables: `cmrseg evaluate --fp32 --out DIR` (shipped model, shipped split). "
                + ARITHMETIC_NOTE)
    runs = " ".join(f"runs/{run.name}" for run in member_runs(shipped))
    return ("Reproduce the validation tables: `cmrseg evaluate --part val --fp32 --out DIR` (shipped model, shipped "
            f"split); the cross-validated tables: `cmrseg evaluate --cross-validation {runs} --fp32 --out DIR` on "
            "the member runs (`scripts/train-folds`; their float32 weights, which the shipped float16 copies match "
            "to rounding). " + ARITHMETIC_NOTE)


def card(shipped: dict, others: list[dict]) -> str:
    split_name = default_model_path().with_suffix(".split.json").name
    lines = [
        "# CMRSeg shipped model: dense U-Net trained on ACDC",
        "",
        f"- File: `{default_model_path().name}`, a self-describing checkpoint (architecture, labels, pre-processing,"
        " training record, metrics) read with `torch.load(weights_only=True)`.",
        f"- Data: ACDC ED and ES frames ({CITATION}); CC BY-NC-SA 4.0, research use.",
        split_line(shipped["split"], split_name),
        *training_lines(shipped),
        inference_line(shipped),
        "",
        *held_out_sections(shipped),
        "", "## Candidates compared (Dice ED+ES, basal rule >= 50 %)", "",
        "The shipped candidate is the one with the highest mean validation Dice among those that pass the "
        "built-in example (`scripts/example`: Dice per structure and phase within the stated tolerances, LV and "
        "RV EF within 5 points of the analytic ones; its last column); every candidate's validation "
        "patients are the same, and none of its networks was trained on them. The held-out columns are each "
        "candidate's own held-out patients (named in the last but one column), so they compare only where those "
        "are the same.", "",
        "Sunnybrook (GE, another site; `python -m cmrseg.external_check`): LV Dice ED / ES and myocardium "
        "Dice ED on the contoured slices, then the RV EF (not contoured) and the quality check, for "
        f"{' and '.join(sorted(shipped['sunnybrook'] or {})) or 'no study (data absent)'}.", "",
        "Network time grows with the number of networks: 167 ms per slice for 3, 282 ms for 5 (fp32 on a 2-core "
        "AVX2 CPU, `cmrseg benchmark`).", "",
        "| candidate | networks | loss | augmentation | correction | val. LV / RV / Myo (off) | val. (on) "
        "| held-out LV | RV | Myo | held-out patients | Sunnybrook | built-in example LV / RV |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for item in [shipped, *others]:
        results, which = held_out(item)
        scores = mean_dice(results)
        off, on = item["validation"][False], item["validation"].get(True)
        choice = "on" if item["prior_correction"] else "off"
        if is_ensemble(item):
            loss, augmentation = "mean of the members", "-"
        else:
            training = item["metadata"]["training"]
            loss, augmentation = f"{training['loss']} ({training['class_weighting'].split(' ')[0]})", \
                augmentation_name(training)
        on_text = f"{on['LV']:.3f} / {on['RV']:.3f} / {on['Myo']:.3f}" if on else "-"
        lines.append(f"| {item['run'].name} | {networks(item)} | {loss} | {augmentation} | {choice} "
                     f"| {off['LV']:.3f} / {off['RV']:.3f} / {off['Myo']:.3f} | {on_text} "
                     f"| {scores['LV']:.3f} | {scores['RV']:.3f} | {scores['Myo']:.3f} | {which} "
                     f"| {sunnybrook_text(item['sunnybrook'])} | {example_text(item['example'])} |")
    arguments = " ".join(word for word in sys.argv[1:] if word != "--dry-run")
    lines += ["", f"Chosen, evaluated and written by `scripts/ship-model {arguments}`. "
              + reproduce_line(shipped), "", "## Levers measured", "", LEVERS.read_text().rstrip(), ""]
    return "\n".join(lines)
