"""The once-per-key frame of check-ins and measures: what a live session keeps in memory."""

from __future__ import annotations

from server.services.submissions import SessionResults


def test_a_kept_result_is_found_by_its_session_and_key_only() -> None:
    kept: SessionResults[str] = SessionResults(per_session=5)
    kept.keep("s1", "k1", "first")
    assert kept.get("s1", "k1") == "first"
    assert kept.get("s1", "k2") is None
    assert kept.get("s2", "k1") is None


def test_each_session_keeps_its_newest_results_in_order_up_to_the_bound() -> None:
    kept: SessionResults[int] = SessionResults(per_session=3)
    for n in range(5):
        kept.keep("s1", f"k{n}", n)
    kept.keep("s2", "k0", 100)
    assert kept.of_session("s1") == [2, 3, 4]
    assert kept.get("s1", "k0") is None
    assert kept.of_session("s2") == [100]


def test_a_forgotten_session_keeps_nothing_and_others_stay() -> None:
    kept: SessionResults[int] = SessionResults(per_session=3)
    kept.keep("s1", "k", 1)
    kept.keep("s2", "k", 2)
    kept.forget("s1")
    kept.forget("never-seen")
    assert kept.of_session("s1") == [] and kept.get("s1", "k") is None
    assert kept.of_session("s2") == [2]
