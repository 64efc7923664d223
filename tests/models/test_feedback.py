"""The ranking rule for negative feedback: a product loses ``HIDE_STEP`` places per recent answer."""

from __future__ import annotations

from models.feedback import HIDE_STEP, demote, demote_pairs


def test_each_answer_costs_a_product_hide_step_places():
    items = [f"p{i}" for i in range(20)]
    assert demote(items, {}) == items
    once = demote(items, {"p0": 1})
    assert once.index("p0") == HIDE_STEP and once[:HIDE_STEP] == items[1:HIDE_STEP + 1]
    assert demote(items, {"p0": 3}).index("p0") == 3 * HIDE_STEP
    assert demote(items, {"p0": 100})[-1] == "p0"  # many answers: the back of the list
    assert demote(items, {"unknown": 5}) == items  # nothing else moves
    assert sorted(demote(items, {"p3": 2, "p4": 1})) == sorted(items)  # a reordering, nothing lost


def test_similar_pairs_move_by_their_item():
    pairs = [("a", "x"), ("b", "x"), ("c", "y")]
    assert demote_pairs(pairs, {"a": 1}, step=1) == [("b", "x"), ("a", "x"), ("c", "y")]
