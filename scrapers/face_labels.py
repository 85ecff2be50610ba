"""The face label of a minifigure: bald, hair, hat or helmet (the seed study's four classes, section 6.5).

The principled source is the figure's inventory: a part in a headgear category whose name says helmet makes a
helmet, any other headgear a hat, a hair part hair, none of these bald. Only when the inventory cannot be read
are keywords in the figure's own name used, and the source of every label is recorded so the two can be told
apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FACE_LABELS = ("bald", "hair", "hat", "helmet")

FROM_INVENTORY = "inventory"
FROM_NAME = "name-keywords"
UNLABELLED = "none"

# Headgear covers hair, so it decides first; a helmet is the more specific headgear.
_PRECEDENCE = ("helmet", "hat", "hair", "bald")

_NAME_KEYWORDS = {
    "helmet": re.compile(r"\bhelmets?\b", re.IGNORECASE),
    "hat": re.compile(r"\b(hats?|caps?|hoods?|crowns?|beanie|bandana|turban|beret|fedora|headdress|bonnet|"
                      r"sombrero|kepi|tiara|headband|headgear)\b", re.IGNORECASE),
    "hair": re.compile(r"\b(hair|ponytail|pigtails|braids?|mohawk|bun)\b", re.IGNORECASE),
    "bald": re.compile(r"\bbald\b", re.IGNORECASE),
}


@dataclass(frozen=True)
class Part:
    """One inventory row: the part's name and its catalogue category ('' when the page does not say)."""

    name: str
    category: str = ""


@dataclass(frozen=True)
class FaceLabel:
    label: str | None  # None: neither the inventory nor the name decides
    source: str  # FROM_INVENTORY, FROM_NAME or UNLABELLED
    evidence: str = ""  # the part or keyword that decided, for auditing labels.csv


def _kind(part: Part) -> str | None:
    """'helmet', 'hat', 'hair' or None; the category decides, the name prefix stands in when it is missing."""
    where = part.category or part.name
    if re.search(r"\bheadgear\b", where, re.IGNORECASE):
        if re.search(r"accessor", where, re.IGNORECASE):  # visors, plumes: they sit on headgear, not heads
            return None
        return "helmet" if _NAME_KEYWORDS["helmet"].search(part.name) else "hat"
    if re.search(r"\bhair\b", where, re.IGNORECASE):
        return "hair"
    return None


def label_from_inventory(parts: list[Part]) -> FaceLabel | None:
    """The label decided by the parts list; None when there is no parts list to judge (an empty inventory)."""
    if not parts:
        return None
    found = {}
    for part in parts:
        kind = _kind(part)
        if kind is not None:
            found.setdefault(kind, part.name)
    for label in _PRECEDENCE[:-1]:
        if label in found:
            return FaceLabel(label, FROM_INVENTORY, found[label])
    return FaceLabel("bald", FROM_INVENTORY, "no hair or headgear among the parts")


def label_from_name(name: str) -> FaceLabel:
    """The fallback: keywords in the figure's name ('... White Construction Helmet'), same precedence."""
    for label in _PRECEDENCE:
        match = _NAME_KEYWORDS[label].search(name)
        if match:
            return FaceLabel(label, FROM_NAME, match.group(0))
    return FaceLabel(None, UNLABELLED, "")


def face_label(parts: list[Part] | None, name: str) -> FaceLabel:
    """Inventory first; the name only when the inventory is missing (None) or empty."""
    decided = label_from_inventory(parts or [])
    return decided if decided is not None else label_from_name(name)
