"""Caption -> superclass labels through the 80 COCO categories (DESIGN section 1).

The vocabulary is data: `coco_superclass.json` beside this file (its "about" field gives the
rules). In short:

- tokens: lowercase, possessive 's dropped, everything but letters and digits is a space;
- the longest phrase wins ("teddy bear" before "bear", "hot dog" before "dog"); a phrase not
  found as written is retried with its last word in singular form;
- COCO synonyms go to their category's supercategory; COCO "person" becomes "others" (a person
  whose gender the caption does not give); gendered words go to man / woman, group words to
  crowd, and the plural of a gender-neutral person word (kids, players) to crowd;
- scene words go to indoor / outdoor ("kitchen" gives both indoor and kitchen: the room and the
  kitchenware it shows); animals outside COCO (lion, fish, snake...) go to animal;
- an ambiguous colour word ("orange") counts only when no noun follows it ("an orange" yes,
  "an orange cat" no);
- unknown words are ignored: a caption with none of the table's words gives [].
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from cineneuron.schemas.superclasses import SUPERCLASSES

# Words after which a colour word is read as a noun (no noun follows it).
_FUNCTION_WORDS = frozenset("""a an the and or but with without on in at of is are was were to from for by
near into onto under over while as then that which who it its this there here""".split())


@dataclass(frozen=True)
class Match:
    text: str  # the caption's words, as found
    key: str  # the table entry they matched
    coco: str | None  # COCO category, if the entry is a COCO synonym
    superclasses: tuple[str, ...]
    plural: bool


@dataclass(frozen=True)
class LabelTable:
    entries: dict  # phrase -> (coco category or None, superclasses tuple)
    irregular: dict  # plural -> singular
    colours: frozenset
    max_words: int

    @classmethod
    def from_json(cls, data: dict) -> LabelTable:
        sup_of = data["coco_supercategory_to_superclass"]
        cats = {c["name"]: sup_of[c["supercategory"]] for c in data["categories"]}
        entries: dict[str, tuple[str | None, tuple[str, ...]]] = {}
        for cat, words in data["coco_synonyms"].items():
            for w in words:
                entries[w] = (cat, (cats[cat],))
        for w, sups in data["words"].items():
            entries[w] = (None, tuple(sups))
        bad = sorted({s for _, sups in entries.values() for s in sups} - set(SUPERCLASSES))
        if bad:
            raise ValueError(f"label table names unknown superclasses: {', '.join(bad)}")
        return cls(entries, dict(data.get("irregular_plurals", {})), frozenset(data.get("colour_words", [])),
                   max(len(k.split()) for k in entries))


@lru_cache(maxsize=1)
def load_table() -> LabelTable:
    text = (resources.files("cineneuron.labels") / "coco_superclass.json").read_text(encoding="utf-8")
    return LabelTable.from_json(json.loads(text))


def tokenize(caption: str) -> list[str]:
    text = caption.lower().replace("\u2019", "'")
    text = re.sub(r"'s\b", " ", text)
    return re.sub(r"[^a-z0-9]+", " ", text).split()


def singular_forms(word: str, irregular: dict) -> list[str]:
    """Candidate singulars of a word, most specific rule first."""
    if word in irregular:
        return [irregular[word]]
    if len(word) <= 3 or not word.endswith("s") or word.endswith("ss"):
        return []
    out = []
    if word.endswith("ies"):
        out.append(word[:-3] + "y")
    if word.endswith("ves"):
        out += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("es"):
        out.append(word[:-2])
    out.append(word[:-1])
    return out


def match_caption(caption: str | None, table: LabelTable | None = None) -> list[Match]:
    """The table entries a caption mentions, left to right, longest phrase first."""
    table = table or load_table()
    toks = tokenize(caption or "")
    found: list[Match] = []
    i = 0
    while i < len(toks):
        hit = None
        for k in range(min(table.max_words, len(toks) - i), 0, -1):
            hit = _lookup(toks[i:i + k], table)
            if hit:
                break
        if hit and hit.key in table.colours and i + 1 < len(toks) and toks[i + 1] not in _FUNCTION_WORDS:
            hit = None  # "orange cat": a colour, not the fruit
        if hit:
            found.append(hit)
            i += k
        else:
            i += 1
    return found


def _lookup(words: list[str], table: LabelTable) -> Match | None:
    phrase = " ".join(words)
    if phrase in table.entries:
        return _match(phrase, phrase, table, plural=False)
    for single in singular_forms(words[-1], table.irregular):
        key = " ".join(words[:-1] + [single])
        if key in table.entries:
            return _match(phrase, key, table, plural=True)
    return None


def _match(text: str, key: str, table: LabelTable, plural: bool) -> Match:
    coco, sups = table.entries[key]
    if plural and "others" in sups:  # several people of unstated gender: a group
        sups = tuple("crowd" if s == "others" else s for s in sups)
    return Match(text, key, coco, sups, plural)


def labels_from_caption(caption: str | None) -> list[str]:
    """Superclass names a caption mentions: sorted, deduplicated; [] for none or no caption."""
    return sorted({s for m in match_caption(caption) for s in m.superclasses})


def coco_from_caption(caption: str | None) -> list[str]:
    """COCO category names a caption mentions: sorted, deduplicated."""
    return sorted({m.coco for m in match_caption(caption) if m.coco})
