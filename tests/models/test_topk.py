"""The shared top-k convention: sorted, positive only, self excluded, padded."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models.topk import top_k_block, top_k_triplets


def test_top_k_block_sorts_excludes_self_and_pads():
    block = sp.csr_matrix(np.array([
        [9.0, 0.1, 0.5, 0.0, 0.3],   # row 2 of the full matrix: column 2 is itself
        [0.2, 0.2, 0.0, -1.0, 0.0],  # a tie (lower column first) and a negative score (dropped)
    ], dtype=np.float32))
    neighbors, scores = top_k_block(block, k=3, first_row=2)
    assert neighbors.tolist() == [[0, 4, 1], [0, 1, -1]]
    assert scores[0].tolist() == pytest.approx([9.0, 0.3, 0.1])
    assert scores[1, 2] == 0.0


def test_top_k_triplets_sums_duplicates():
    neighbors, scores = top_k_triplets(np.array([0, 0, 0]), np.array([1, 2, 1]), np.array([0.3, 0.5, 0.4]),
                                       n_rows=2, n_cols=3, k=2)
    assert neighbors.tolist() == [[1, 2], [-1, -1]]
    assert scores[0].tolist() == pytest.approx([0.7, 0.5])
