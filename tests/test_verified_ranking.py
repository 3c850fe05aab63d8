"""The verified board's ranking (leadersboard/verified_ranking.py): ranks, Chatbot Arena rank ranges from the 95%
intervals, and ties with the leader by the paired bootstrap over shared resamples."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadersboard.models.board import BoardEntry
from leadersboard.models.scores import AVERAGE, Interval, MetricSet, Scores
from leadersboard.scoring.bootstrap import Floats, interval
from leadersboard.verified_ranking import RankedBoard, VerifiedEntry, rank_entries

AUROC = "image_AUROC"
RESAMPLES = 1000
START = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def scores(
    value: float, ci_low: float, ci_high: float, *, pixel: bool = False, resamples: int = RESAMPLES, seed: int = 13
) -> Scores:
    """`image_AUROC` (and pixel_AUROC if `pixel`) = the interval on average and in category `bottle`."""
    metrics = MetricSet(
        image_AUROC=Interval(value=value, ci_low=ci_low, ci_high=ci_high),
        image_F1Max=Interval(value=0.5, ci_low=0.4, ci_high=0.6),
        pixel_AUROC=Interval(value=value, ci_low=ci_low, ci_high=ci_high) if pixel else None,
    )
    return Scores(**dict(metrics), per_category={"bottle": metrics}, scorer_version="1", resamples=resamples, seed=seed)


@dataclass(frozen=True)
class Candidate:
    """A board entry and its replicates of the board's metric (None: none stored)."""

    entry: BoardEntry
    replicates: Floats | None


def candidate(
    user: str,
    submission_id: str,
    replicates: Floats | None,
    value: float | None = None,
    *,
    minutes: int = 0,
    scored: Scores | None = None,
) -> Candidate:
    """An entry created `minutes` after START, scored `scored`, else the interval of `replicates` around `value`
    (their mean unless given)."""
    if scored is None and replicates is not None:
        found = interval(float(np.mean(replicates)) if value is None else value, replicates)
        scored = scores(found.value, found.ci_low, found.ci_high)
    assert scored is not None
    entry = BoardEntry(
        submission_id=submission_id,
        user=user,
        created_at=START + timedelta(minutes=minutes),
        benchmark="demo",
        benchmark_version=1,
        scores=scored,
    )
    return Candidate(entry, replicates)


@dataclass(frozen=True)
class Board:
    """A whole board made the way a server makes a page: rank, then the rows with the replicates of `shown`."""

    ranked: RankedBoard
    entries: list[VerifiedEntry]

    @property
    def missing(self) -> int:
        return self.ranked.missing


def verified_ranking(
    candidates: list[Candidate], metric: str, group: str = AVERAGE, *, best_per_user: bool = True
) -> Board:
    ranked = rank_entries([c.entry for c in candidates], metric, group, best_per_user=best_per_user)
    return Board(ranked, ranked.page(0, len(candidates), stored(candidates, ranked.shown(0, len(candidates)))))


def stored(candidates: list[Candidate], shown: list[BoardEntry]) -> dict[str, Floats]:
    """The replicates a server would fetch: those of the shown entries that have them."""
    by_id = {c.entry.submission_id: c.replicates for c in candidates}
    return {e.submission_id: r for e in shown if (r := by_id[e.submission_id]) is not None}


def noise(seed: int, scale: float) -> Floats:
    return np.random.default_rng(seed).normal(0.0, scale, RESAMPLES)


def summary(board: Board) -> list[tuple[str, int, tuple[int, int], bool | None]]:
    return [(e.submission_id, e.rank, e.rank_range, e.tied_with_leader) for e in board.entries]


def test_identical_replicates_are_tied_and_share_the_rank() -> None:
    same = 0.9 + noise(1, 0.01)
    board = verified_ranking([candidate("bob", "b1", same.copy(), minutes=1), candidate("alice", "a1", same)], AUROC)
    # Equal values: the earlier submission leads; both rank 1; d is 0 on every resample.
    assert summary(board) == [("a1", 1, (1, 2), None), ("b1", 1, (1, 2), True)]
    assert board.entries[1].diff_ci == Interval(value=0.0, ci_low=0.0, ci_high=0.0)


def test_a_clearly_better_entry_is_not_tied() -> None:
    board = verified_ranking(
        [candidate("bob", "b1", 0.80 + noise(2, 0.01)), candidate("al", "a1", 0.95 + noise(1, 0.01))], AUROC
    )
    assert summary(board) == [("a1", 1, (1, 1), None), ("b1", 2, (2, 2), False)]
    diff = board.entries[1].diff_ci
    assert diff is not None and 0.0 < diff.ci_low < diff.value < diff.ci_high
    assert diff.value == pytest.approx(0.15, abs=0.01)


def test_the_paired_test_separates_entries_whose_intervals_overlap() -> None:
    """Both entries move with the images each resample draws (shared noise); the difference barely does."""
    shared = noise(1, 0.01)
    leader, near = 0.900 + shared + noise(2, 0.001), 0.895 + shared + noise(3, 0.001)
    board = verified_ranking([candidate("al", "a1", leader), candidate("bob", "b1", near)], AUROC)
    first, second = board.entries
    assert second.ci_high > first.ci_low  # the intervals overlap...
    assert second.rank_range == first.rank_range == (1, 2)  # ...so the ranks are uncertain,
    assert second.tied_with_leader is False  # yet the paired difference excludes 0.
    # The same replicates out of pairing (another resample order) cannot tell them apart: pairing is the point.
    unpaired = verified_ranking(
        [candidate("al", "a1", leader), candidate("bob", "b1", np.random.default_rng(4).permutation(near))], AUROC
    )
    assert unpaired.entries[1].tied_with_leader is True


def test_rank_ranges_follow_chatbot_arenas_convention_at_both_ends() -> None:
    rows = {  # submission: value, ci_low, ci_high
        "a": (0.90, 0.88, 0.92),
        "b": (0.89, 0.87, 0.91),
        "c": (0.80, 0.78, 0.82),
        "d": (0.80, 0.79, 0.81),
        "e": (0.50, 0.40, 0.60),
    }
    replicates = np.full(RESAMPLES, 0.5)
    board = verified_ranking(
        [candidate(s, s, replicates, scored=scores(*row), minutes=i) for i, (s, row) in enumerate(rows.items())], AUROC
    )
    assert [(e.submission_id, e.rank, e.rank_range) for e in board.entries] == [
        ("a", 1, (1, 2)),  # nothing certainly better; c, d, e certainly worse
        ("b", 2, (1, 2)),
        ("c", 3, (3, 4)),  # a, b certainly better (lows .88, .87 above .82); e certainly worse
        ("d", 3, (3, 4)),  # equal values share the rank
        ("e", 5, (5, 5)),
    ]


def test_a_range_contains_the_rank_when_an_interval_misses_its_value() -> None:
    """Percentile intervals need not contain the point value; each is widened to contain it."""
    replicates = np.full(RESAMPLES, 0.5)
    board = verified_ranking(
        [
            candidate("x", "x", replicates, scored=scores(0.90, 0.95, 0.97)),
            candidate("y", "y", replicates, scored=scores(0.93, 0.92, 0.94)),
        ],
        AUROC,
    )
    assert [(e.submission_id, e.rank, e.rank_range) for e in board.entries] == [("y", 1, (1, 2)), ("x", 2, (1, 2))]


def test_best_per_user_keeps_each_users_best_and_the_earlier_on_equal_values() -> None:
    entries = [
        candidate("alice", "a-low", 0.80 + noise(1, 0.01)),
        candidate("alice", "a-high", 0.90 + noise(2, 0.01)),
        candidate("bob", "b-late", 0.85 + noise(3, 0.01), value=0.85, minutes=5),
        candidate("bob", "b-early", 0.85 + noise(4, 0.01), value=0.85, minutes=1),
    ]
    best = verified_ranking(entries, AUROC)
    assert [(e.submission_id, e.rank) for e in best.entries] == [("a-high", 1), ("b-early", 2)]
    every = verified_ranking(entries, AUROC, best_per_user=False)
    assert [(e.submission_id, e.rank) for e in every.entries] == [
        ("a-high", 1),
        ("b-early", 2),
        ("b-late", 2),
        ("a-low", 4),
    ]


def test_entries_without_the_metric_are_left_out_and_counted() -> None:
    with_maps = candidate("alice", "a1", 0.9 + noise(1, 0.01), scored=scores(0.9, 0.88, 0.92, pixel=True))
    without_maps = candidate("bob", "b1", 0.8 + noise(2, 0.01))
    self_reported = Candidate(
        BoardEntry(submission_id="d1", user="dave", created_at=START, dataset="mvtec", metrics={AUROC: 1.0}), None
    )
    board = verified_ranking([with_maps, without_maps, self_reported], "pixel_AUROC")
    assert (summary(board), board.missing) == ([("a1", 1, (1, 1), None)], 2)
    in_category = verified_ranking([with_maps, without_maps, self_reported], AUROC, "bottle")
    assert ([e.submission_id for e in in_category.entries], in_category.missing) == (["a1", "b1"], 1)
    elsewhere = verified_ranking([with_maps, without_maps], AUROC, "cable")
    assert (elsewhere.entries, elsewhere.missing) == ([], 2)
    with pytest.raises(ValueError, match="unknown metric 'image_AUROCC'"):
        verified_ranking([with_maps], "image_AUROCC")


def test_without_replicates_that_pair_an_entry_is_ranked_but_its_tie_is_unknown() -> None:
    """Absent replicates (an entry's or the leader's), another length, another seed: no tie, never an error."""
    leader = candidate("alice", "a1", 0.95 + noise(1, 0.01))
    shorter = candidate("bob", "b1", 0.90 + noise(2, 0.01)[:-1], value=0.90)
    absent = candidate("carol", "c1", None, scored=scores(0.85, 0.84, 0.86))
    other_seed = candidate("dan", "d1", None, scored=scores(0.80, 0.79, 0.81, seed=14))
    other_seed = Candidate(other_seed.entry, 0.80 + noise(3, 0.01))
    paired = candidate("erin", "e1", 0.70 + noise(4, 0.01), value=0.70)
    board = verified_ranking([leader, shorter, absent, other_seed, paired], AUROC)
    assert [(e.submission_id, e.rank, e.tied_with_leader, e.diff_ci) for e in board.entries[:4]] == [
        ("a1", 1, None, None),
        ("b1", 2, None, None),
        ("c1", 3, None, None),
        ("d1", 4, None, None),
    ]
    assert (board.entries[4].submission_id, board.entries[4].tied_with_leader) == ("e1", False)
    no_leader = verified_ranking([Candidate(leader.entry, None), paired], AUROC)
    assert [e.tied_with_leader for e in no_leader.entries] == [None, None]


def test_a_page_needs_the_replicates_of_the_leader_and_its_own_rows_only() -> None:
    candidates = [candidate(f"u{i}", f"s{i}", 0.9 - i / 100 + noise(i, 0.01), value=0.9 - i / 100) for i in range(10)]
    ranked = rank_entries([c.entry for c in reversed(candidates)], AUROC)
    shown = ranked.shown(4, 3)
    assert [e.submission_id for e in shown] == ["s0", "s4", "s5", "s6"]
    assert [e.submission_id for e in ranked.shown(0, 2)] == ["s0", "s1"]
    assert (ranked.shown(20, 5), rank_entries([], AUROC).shown(0, 5)) == ([ranked.entries[0]], [])
    page = ranked.page(4, 3, stored(candidates, shown))
    whole = verified_ranking(candidates, AUROC).entries
    assert page == whole[4:7]
    assert all(row.tied_with_leader is not None for row in page)
    assert (ranked.page(9, 5, stored(candidates, ranked.shown(9, 5))), ranked.page(10, 5, {})) == (whole[9:], [])


def test_the_leaders_own_fields() -> None:
    replicates = 0.9 + noise(1, 0.01)
    board = verified_ranking([candidate("alice", "a1", replicates, value=0.9)], AUROC)
    (leader,) = board.entries
    assert (leader.rank, leader.rank_range, leader.tied_with_leader, leader.diff_ci) == (1, (1, 1), None, None)
    assert (leader.value, leader.ci_low, leader.ci_high) == (0.9, *np.percentile(replicates, [2.5, 97.5]))
    assert (leader.user, leader.submitted_at, leader.verified) == ("alice", START, True)
    assert (leader.benchmark, leader.benchmark_version, board.ranked.metric, board.ranked.group) == (
        "demo",
        1,
        AUROC,
        "average",
    )
    assert verified_ranking([], AUROC).entries == []


def test_the_board_does_not_depend_on_the_input_order() -> None:
    entries = [
        candidate(f"u{i}", f"s{i}", 0.8 + i % 4 / 100 + noise(i, 0.01), value=0.8 + i % 4 / 100) for i in range(12)
    ]
    boards = {
        "".join(
            e.model_dump_json()
            for e in verified_ranking(random.Random(seed).sample(entries, len(entries)), AUROC).entries
        )
        for seed in range(5)
    }
    assert len(boards) == 1


intervals = st.tuples(st.floats(0.0, 1.0), st.floats(-0.2, 0.2), st.floats(0.0, 0.3)).map(
    lambda t: (t[0], t[0] + t[1], t[0] + t[1] + t[2])
)  # an interval near its value, not always around it


@settings(max_examples=200, deadline=None)
@given(st.lists(intervals, min_size=1, max_size=25))
def test_a_rank_range_contains_the_rank_and_lies_within_the_board(rows: list[tuple[float, float, float]]) -> None:
    replicates = np.zeros(RESAMPLES)
    board = verified_ranking(
        [candidate(f"u{i}", f"s{i}", replicates, scored=scores(*row)) for i, row in enumerate(rows)], AUROC
    )
    assert len(board.entries) == len(rows)
    for entry in board.entries:
        best, worst = entry.rank_range
        assert 1 <= best <= entry.rank <= worst <= len(rows)
