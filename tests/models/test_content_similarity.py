"""Content similarity: the right neighbours on a catalogue where they are known, in Chinese, English and
mixed titles, and the output conventions (self excluded, sorted, padded)."""

from __future__ import annotations

import numpy as np
import pytest

from models import similarity
from models.similarity import content_neighbors, df_cap, product_text

TEA = ["西湖龙井绿茶 250克 明前特级", "安溪铁观音乌龙茶 礼盒装 500克", "云南普洱茶饼 357克 熟茶"]
SHOES = ["Nike Air Zoom Pegasus running shoes men", "Adidas Ultraboost running shoe women",
         "Asics Gel-Kayano 30 running shoes"]
KEYBOARDS = ["Logitech MX Keys 无线键盘 wireless keyboard", "机械键盘 红轴 104键 游戏键盘",
             "Keychron K2 mechanical keyboard 蓝牙机械键盘"]
CATALOGUE = TEA + SHOES + KEYBOARDS
GROUP = np.repeat(np.arange(3), 3)


def test_each_item_top_neighbours_are_its_own_group():
    neighbors, scores = content_neighbors(CATALOGUE, k=4)
    for i in range(len(CATALOGUE)):
        top_two = neighbors[i, :2]
        assert set(GROUP[top_two]) == {GROUP[i]}, (CATALOGUE[i], [CATALOGUE[j] for j in top_two])
        assert i not in neighbors[i]
        assert scores[i, 0] > 0


def test_chinese_only_titles_find_their_chinese_siblings():
    neighbors, _ = content_neighbors(CATALOGUE, k=2)
    assert sorted(neighbors[0].tolist()) == [1, 2]  # 西湖龙井绿茶 -> the two other teas
    # A Chinese-only keyboard title finds the keyboards whose titles mix Chinese and English.
    assert sorted(neighbors[7].tolist()) == [6, 8]


def test_output_shapes_dtypes_and_descending_rows():
    neighbors, scores = content_neighbors(CATALOGUE, k=5)
    assert neighbors.shape == scores.shape == (9, 5)
    assert neighbors.dtype == np.int32 and scores.dtype == np.float32
    assert (np.diff(scores, axis=1) <= 0).all()


def test_rows_without_shared_ngrams_are_padded():
    # "qqq zzz" shares no n-gram with anything; the two others share most of theirs.
    neighbors, scores = content_neighbors(["red wool scarf", "qqq zzz", "red wool scarves"], k=3)
    assert neighbors[1].tolist() == [-1, -1, -1] and scores[1].tolist() == [0.0, 0.0, 0.0]
    assert neighbors[0].tolist() == [2, -1, -1] and scores[0, 0] > 0.3


def test_degenerate_inputs():
    n, s = content_neighbors([], k=3)
    assert n.shape == (0, 3) and s.shape == (0, 3)
    n, s = content_neighbors(["", "", ""], k=2)  # no vocabulary at all
    assert (n == -1).all() and (s == 0).all() and n.shape == (3, 2)
    n, _ = content_neighbors(["blue mug", "blue mug"], k=3)  # fewer candidates than k
    assert n.tolist() == [[1, -1, -1], [0, -1, -1]]


def test_chunked_and_threaded_result_equals_single_chunk(monkeypatch):
    whole = content_neighbors(CATALOGUE * 3, k=6)
    monkeypatch.setattr(similarity, "CHUNK_ROWS", 4)
    chunked = content_neighbors(CATALOGUE * 3, k=6)
    np.testing.assert_array_equal(whole[1], chunked[1])
    np.testing.assert_array_equal(np.sort(whole[0], axis=1), np.sort(chunked[0], axis=1))


def test_df_cap_keeps_the_rarest_ngrams_within_the_budget():
    df = np.array([2, 2, 3, 10, 50])
    # Cumulative cost (sum of df²) by df value: 2 -> 8, 3 -> 17, 10 -> 117, 50 -> 2617.
    assert df_cap(df, budget=100) == 3
    assert df_cap(df, budget=117) == 10
    assert df_cap(df, budget=1e9) == 50
    assert df_cap(df, budget=7) == 0


def test_common_ngrams_are_pruned_only_for_large_catalogues(monkeypatch):
    # With a tiny budget every n-gram shared by more than two products is dropped: the shoes, which only
    # share "running shoe"-type n-grams across all three, lose similarity they had before.
    before = content_neighbors(SHOES, k=2)[1]
    monkeypatch.setattr(similarity, "WORK_PER_ITEM", 3)  # budget 9 = one n-gram of df 3, or two of df 2
    after = content_neighbors(SHOES, k=2)[1]
    assert after.sum() < before.sum()


def test_product_text_weights_the_title():
    text = product_text("Green Tea", "Lipton", "Food > Drinks > Tea", "A" * 1000)
    assert text.count("Green Tea") == 2
    assert ">" not in text and "Lipton Food Drinks Tea" in text
    assert len(text) < 400
    assert product_text("只有标题") == "只有标题 只有标题"


@pytest.mark.parametrize("k", [0, 1])
def test_small_k(k):
    n, s = content_neighbors(CATALOGUE, k=k)
    assert n.shape == (9, k)
