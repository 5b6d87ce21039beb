"""The paper's ablation tables as rows over one seed's trained models.

A row names its training variant, how memories are retrieved, the pool, the test subset and
the input noise; everything else is shared, so rows of a table differ only in what they name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    label: str
    variant: str = "full"
    mode: str = "mom"  # mom | text (top-1 by text, the naive baseline) | no_img | no_act
    pool: str = "base"  # half | base | ext1 | ext2
    subset: str = "all"  # all | ood (test samples showing a kind held out of training)
    noise: float = 0.0  # Gaussian noise sd as a fraction of each voxel's sd over the test set


@dataclass(frozen=True)
class Table:
    name: str
    paper: str
    title: str
    rows: tuple[Row, ...]
    ref: int  # index of the full-model row the others are compared with (paired, same samples)
    note: str = ""


TABLES = {t.name: t for t in (
    Table("components", "Tab. 4", "components of the method", (
        Row("InfoNCE img+text only", "base", "text"), Row("+ category loss", "cls", "text"),
        Row("+ action loss", "full", "text"), Row("+ MoM (full)", "full")), 3,
        "rows without MoM replay the top-1 memory by text, the paper's naive retrieval"),
    Table("semantics", "Tab. S11", "semantic losses", (
        Row("category only", "cls"), Row("action only", "act"), Row("full", "full")), 2),
    Table("memory", "Tab. S12", "memory spaces", (
        Row("MoM w/o image memories", mode="no_img"), Row("MoM w/o action memories", mode="no_act"),
        Row("full MoM"), Row("text-only top-1 (naive)", mode="text")), 2),
    Table("pool", "Tab. S4", "pool size", (
        Row("50 % pool", pool="half"), Row("full pool"), Row("+ 1 external world", pool="ext1"),
        Row("+ 2 external worlds", pool="ext2")), 1,
        "no retraining between rows: every row uses one checkpoint (hash in the row)"),
    Table("ood", "Tab. S5", "out-of-distribution test samples", (
        Row("OOD samples, training pool", subset="ood"), Row("OOD samples, + external worlds", pool="ext2", subset="ood")), 0,
        "OOD = test samples whose clip holds a kind kept out of training (bus, cat, laptop); the external worlds hold every kind"),
    Table("noise", "Tab. S7", "input noise", (
        Row("clean"), Row("noise 10 %", noise=0.10), Row("noise 25 %", noise=0.25)), 0,
        "Gaussian noise at a fraction of each voxel's sd over the test set, added to the test fMRI"),
)}

# The paper's claims, each judged on one table by a paired CI: (table, better row, worse row,
# metric, claim, kind). kind "gain": better > worse; "robust": no significant loss.
CLAIMS = (
    ("components", 3, 0, "same_superclass", "the full method beats InfoNCE img+text with naive retrieval", "gain"),
    ("components", 2, 0, "same_superclass", "the semantic losses help (naive retrieval both)", "gain"),
    ("components", 3, 2, "same_superclass", "MoM beats naive retrieval (same model)", "gain"),
    ("semantics", 2, 0, "same_action", "adding the action loss to category-only helps action", "gain"),
    ("semantics", 2, 1, "same_superclass", "adding the category loss to action-only helps superclass", "gain"),
    ("memory", 2, 3, "same_superclass", "MoM beats text-only top-1 retrieval", "gain"),
    ("memory", 2, 0, "ssim", "image memories help the reconstruction's pixels", "gain"),
    ("memory", 2, 1, "same_action", "action memories help the action", "gain"),
    ("pool", 3, 0, "same_superclass", "a larger pool gives better reconstructions", "gain"),
    ("pool", 3, 1, "ssim", "external worlds in the pool help pixels", "gain"),
    ("ood", 1, 0, "same_kind", "memories of unseen kinds are found with no retraining", "gain"),
    ("noise", 1, 0, "same_superclass", "robust to 10 % input noise", "robust"),
    ("noise", 2, 0, "same_superclass", "robust to 25 % input noise", "robust"),
)


def needed_variants(names: list[str]) -> list[str]:
    return list(dict.fromkeys(r.variant for n in names for r in TABLES[n].rows))
