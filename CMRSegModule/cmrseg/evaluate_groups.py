"""Dice by pathology group (ACDC's NOR, MINF, DCM, HCM, RV), per phase and structure, under the basal rule of
the headline Dice (>= 50 %): where a model's weak cases lie (for example the small end-systolic LV cavity of
hypertrophic hearts). A split's test patients number a few per group: read differences as hints, not
findings."""

from __future__ import annotations

import numpy as np

CRITERION = "50"
PHASES = ("ED", "ES")
STRUCTURES = ("LV", "RV", "Myo")  # in the order the product's tables give them


def group_table(rows: list[dict]) -> list[dict]:
    """Mean Dice per method, group, phase and structure of Table 1's per-case ``rows`` (those with a group)."""
    chosen = [r for r in rows if r.get("group") and r["criterion"] == CRITERION]
    table = []
    for method, group in dict.fromkeys((r["method"], r["group"]) for r in chosen):
        mine = [r for r in chosen if r["method"] == method and r["group"] == group]
        entry = {"method": method, "group": group, "patients": len({r["patient"] for r in mine})}
        for phase in PHASES:
            for structure in STRUCTURES:
                values = [r["dice"] for r in mine if r["phase"] == phase and r["structure"] == structure]
                entry[f"{phase}_{structure}"] = float(np.mean(values)) if values else None
        table.append(entry)
    return sorted(table, key=lambda entry: (entry["method"], entry["group"]))


def group_markdown(table: list[dict]) -> str:
    """The table as Markdown, one row per method and group (a line saying so when no case has a group)."""
    if not table:
        return "No case names a pathology group: no Dice by group.\n"
    columns = [f"{phase}_{structure}" for phase in PHASES for structure in STRUCTURES]
    lines = ["Dice by pathology group (basal rule >= 50 %)", "",
             "| method | group | patients | " + " | ".join(c.replace("_", " ") for c in columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]  # fmt: skip
    for entry in table:
        cells = ["-" if entry[c] is None else f"{entry[c]:.3f}" for c in columns]
        lines.append(f"| {entry['method']} | {entry['group']} | {entry['patients']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
