"""The in-process memory in front of the prediction cache: keyed by model version, bounded."""

from __future__ import annotations

from champipy.services.recent_results import RecentResults
from champipy.store.base import SpeciesScore

RESULTS = (SpeciesScore("Amanita muscaria", 0.9), SpeciesScore("Coprinus comatus", 0.1))


def test_results_never_cross_model_versions():
    memory = RecentResults()
    memory.remember_results("abc", "1", RESULTS)
    assert memory.results("abc", "1") == RESULTS
    assert memory.results("abc", "2") is None
    assert memory.results("other", "1") is None


def test_least_recently_used_entries_leave_first():
    memory = RecentResults(max_entries=2)
    memory.remember_results("a", "1", RESULTS)
    memory.remember_results("b", "1", RESULTS)
    memory.results("a", "1")  # "a" is used again, so "b" is the oldest
    memory.remember_results("c", "1", RESULTS)
    assert memory.results("b", "1") is None
    assert memory.results("a", "1") == RESULTS and memory.results("c", "1") == RESULTS
    for sha in "xyz":
        memory.remember_kept(sha)
    assert [memory.is_kept(sha) for sha in "xyz"] == [False, True, True]
