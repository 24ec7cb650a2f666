"""The names an expert may give a photo: a Latin binomial, a genus alone, or one of two special
answers that are stored but never trained as a class.

``"amanita Muscaria "`` becomes ``"Amanita muscaria"``. A name the service already knows (a
model label, a species in the store) is matched case- and space-insensitively and answered in
its known spelling, so a deployment whose labels are spelled otherwise keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import InvalidInput

NOT_A_MUSHROOM = "not a mushroom"
UNKNOWN_SPECIES = "unknown species"
SPECIAL_ANSWERS = (NOT_A_MUSHROOM, UNKNOWN_SPECIES)
MAX_NAME_LENGTH = 120

# Genus, then optionally an epithet and an infraspecific rank with its name (as Mushroom
# Observer writes them: "Amanita muscaria var. guessowii"). Epithets may hold a hyphen
# ("Boletus rex-veris").
_RANKS = ("var.", "subsp.", "ssp.", "f.")
_GENUS = re.compile(r"[a-z]{2,}")
_EPITHET = re.compile(r"[a-z]+(?:-[a-z]+)*")


def is_special(name: str) -> bool:
    return name in SPECIAL_ANSWERS


def is_trainable(label: str) -> bool:
    """Labels that can be a class of a model: every name but the special answers."""
    return not is_special(label)


def normalise_species(name: str, known: Iterable[str] = ()) -> str:
    """The stored spelling of an expert's answer, or InvalidInput saying what is accepted."""
    collapsed = " ".join(name.split())
    if not collapsed:
        raise InvalidInput("The species name is empty.")
    if len(collapsed) > MAX_NAME_LENGTH:
        raise InvalidInput(f"A species name has at most {MAX_NAME_LENGTH} characters.")
    folded = collapsed.casefold()
    for special in SPECIAL_ANSWERS:
        if folded == special or folded == special.replace(" ", "-") or folded == special.replace(" ", "_"):
            return special
    for label in known:
        if " ".join(label.split()).casefold() == folded:
            return label
    words = folded.split(" ")
    if words[1:] == ["sp."]:  # "Amanita sp.": the genus, species not known
        words = words[:1]
    if not _GENUS.fullmatch(words[0]) or not _valid_rest(words[1:]):
        raise InvalidInput(
            f"{collapsed!r} is not a species name: give a Latin name (genus and species, such as "
            f"'Amanita muscaria', or a genus alone), {NOT_A_MUSHROOM!r} or {UNKNOWN_SPECIES!r}."
        )
    return " ".join([words[0].capitalize(), *words[1:]])


def _valid_rest(words: list[str]) -> bool:
    if not words:
        return True  # a genus alone
    if not _EPITHET.fullmatch(words[0]):
        return False
    rest = words[1:]
    if not rest:
        return True
    return len(rest) == 2 and rest[0] in _RANKS and _EPITHET.fullmatch(rest[1]) is not None
