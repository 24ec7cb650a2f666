"""Names an expert may give: Latin names normalised, known spellings kept, two special answers,
and a clear refusal of anything else."""

from __future__ import annotations

import pytest

from champipy.errors import InvalidInput
from champipy.species_names import NOT_A_MUSHROOM, UNKNOWN_SPECIES, is_trainable, normalise_species


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("amanita Muscaria ", "Amanita muscaria"),
        ("  AMANITA   MUSCARIA", "Amanita muscaria"),
        ("Boletus", "Boletus"),
        ("boletus sp.", "Boletus"),
        ("Boletus rex-veris", "Boletus rex-veris"),
        ("Amanita muscaria var. guessowii", "Amanita muscaria var. guessowii"),
        ("Not a Mushroom", NOT_A_MUSHROOM),
        ("not-a-mushroom", NOT_A_MUSHROOM),
        ("unknown_species", UNKNOWN_SPECIES),
        (" Unknown  species ", UNKNOWN_SPECIES),
    ],
)
def test_names_are_normalised(given: str, stored: str):
    assert normalise_species(given) == stored


def test_a_known_spelling_wins_over_the_latin_rule():
    assert normalise_species("CHANTERELLE", known=["chanterelle", "amanita"]) == "chanterelle"
    assert normalise_species("lycoperdon  PERLATUM", known=["Lycoperdon perlatum"]) == "Lycoperdon perlatum"


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        "A",
        "Amanita muscaria muscaria",
        "Amanita 42",
        "<script>",
        "Amanita muscaria var.",
        "x" * 200,
        "Amanité",
    ],
)
def test_anything_else_is_refused_with_what_is_accepted(given: str):
    with pytest.raises(InvalidInput) as refused:
        normalise_species(given)
    message = str(refused.value)
    assert "empty" in message or "at most" in message or "Latin name" in message


def test_special_answers_never_train():
    assert not is_trainable(NOT_A_MUSHROOM) and not is_trainable(UNKNOWN_SPECIES)
    assert is_trainable("Amanita muscaria")
