"""The block-CSR layout: its kernel, the checks on its way in, its choice and its files.

A weight kept in whole aligned runs of B outputs (what ``granularity="block"``
leaves) multiplies as blocks of B contiguous values: the same sums as the CSR
walk, in the same order, so the tests ask for agreement to 1e-6 relative and
for bitwise batch invariance.
"""

import dataclasses

import numba  # noqa: F401 - a missing numba must fail this module, not skip it
import numpy as np
import pytest
import scipy.sparse as sp

from skprune._nn import _kernels
from skprune.compress import CompactMLP, choose_layouts
from skprune.compress._compact import _block_width


def block_weight(n_rows, n_out, block, density, seed=0, dtype=np.float32):
    """A weight keeping whole aligned runs of ``block`` outputs (the last ragged)."""
    rng = np.random.default_rng(seed)
    kept = rng.random((n_rows, -(-n_out // block))) < density
    mask = np.repeat(kept, block, axis=1)[:, :n_out]
    values = rng.standard_normal((n_rows, n_out)) + 3 * np.sign(rng.random(n_out) - 0.5)
    return sp.csr_matrix((values * mask).astype(dtype))


def batch(n_rows, n_columns, seed=1, dtype=np.float32):
    return sp.random(n_rows, n_columns, density=0.05, format="csr",
                     dtype=dtype, random_state=seed)  # fmt: skip


def identity_map(n):
    return _kernels.CheckedColumnMap(np.arange(n), n)


def valid_parts():
    """indptr, columns, values of a 3-row, 20-column weight in blocks of 8."""
    indptr = np.array([0, 2, 2, 3], dtype=np.int32)
    columns = np.array([0, 2, 1], dtype=np.int16)  # block 2 is ragged: columns 16-19
    values = np.arange(24, dtype=np.float32).reshape(3, 8)
    return indptr, columns, values


# the product --------------------------------------------------------------------


@pytest.mark.parametrize("block", [4, 8, 16, 3])  # 3: the run-time-width loop
@pytest.mark.parametrize("n_out", [64, 61])  # 61: a ragged last block
def test_block_product_equals_the_csr_product(block, n_out):
    weight = block_weight(400, n_out, block, 0.1)
    X = batch(60, 400)
    blocks = _kernels.CheckedBlockCSR.from_csr(weight, block)
    got = _kernels.csr_times_blocks(X, identity_map(400), blocks)
    expected = _kernels.csr_times_csr(X, identity_map(400), weight)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    np.testing.assert_allclose(got, (X @ weight).toarray(), rtol=1e-5, atol=1e-5)


def test_block_product_of_a_row_does_not_depend_on_its_batch(
    monkeypatch, two_torch_threads
):
    weight = block_weight(300, 61, 8, 0.2)
    blocks = _kernels.CheckedBlockCSR.from_csr(weight, 8)
    X = batch(500, 300)
    with monkeypatch.context() as patch:  # the whole batch on the parallel build
        patch.setattr(_kernels, "PARALLEL_WORK", 0)
        whole = _kernels.csr_times_blocks(X, identity_map(300), blocks)
    assert ("csr_times_blocks", True, 8) in _kernels._COMPILED
    for i in (0, 17, 499):  # each row alone on the serial one
        alone = _kernels.csr_times_blocks(X[i : i + 1], identity_map(300), blocks)
        np.testing.assert_array_equal(alone[0], whole[i])
    halves = [_kernels.csr_times_blocks(X[a:b], identity_map(300), blocks)
              for a, b in ((0, 123), (123, 500))]  # fmt: skip
    np.testing.assert_array_equal(np.vstack(halves), whole)


def test_block_product_skips_the_columns_the_map_drops():
    weight = block_weight(50, 32, 8, 0.5)
    X = batch(20, 80).tocsr()
    column_map = np.full(80, -1)
    column_map[10:60] = np.arange(50)
    got = _kernels.csr_times_blocks(
        X, column_map, _kernels.CheckedBlockCSR.from_csr(weight, 8)
    )
    np.testing.assert_allclose(got, (X[:, 10:60] @ weight).toarray(), rtol=1e-5)


def test_int8_blocks_multiply_as_their_scales_say():
    weight = block_weight(200, 40, 8, 0.3)
    values = weight.copy()
    values.data = np.clip(np.rint(values.data * 10), -127, 127)
    values = values.astype(np.int8)
    scales = np.linspace(0.5, 2.0, 200).astype(np.float32)
    X = batch(30, 200)
    blocks = _kernels.CheckedBlockCSR.from_csr(values, 8)
    got = _kernels.csr_times_blocks(X, identity_map(200), blocks, scales)
    expected = _kernels.csr_times_csr(X, identity_map(200), values, scales)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="needs scales"):
        _kernels.csr_times_blocks(X, identity_map(200), blocks)
    with pytest.raises(ValueError, match="float32 to multiply an int8"):
        _kernels.csr_times_blocks(X.astype(np.float64), identity_map(200), blocks,
                                  scales)  # fmt: skip


# making blocks from CSR -----------------------------------------------------------


def test_whole_runs_become_blocks_that_share_the_csr_values():
    weight = block_weight(100, 64, 8, 0.2)
    assert _kernels.block_padding(weight, 8) == 0
    blocks = _kernels.CheckedBlockCSR.from_csr(weight, 8)
    assert blocks.values.shape == (weight.nnz // 8, 8)
    assert np.shares_memory(blocks.values, weight.data)
    assert blocks.columns.dtype == np.int16  # 8 column blocks fit int16


def test_partial_runs_are_padded_with_zeros_and_counted():
    # row 0 keeps columns 1 and 2 of block 0; row 1 keeps all of block 1;
    # row 2 keeps column 9 (the ragged last block: columns 8-9 of 10)
    dense = np.zeros((3, 10), dtype=np.float32)
    dense[0, [1, 2]] = [1.0, 2.0]
    dense[1, 4:8] = 5.0
    dense[2, 9] = 7.0
    weight = sp.csr_matrix(dense)
    assert _kernels.block_padding(weight, 4) == 2 + 0 + 1
    assert _kernels.block_padding(weight, 8) == 6 + 4 + 1
    blocks = _kernels.CheckedBlockCSR.from_csr(weight, 4)
    np.testing.assert_array_equal(blocks.indptr, [0, 1, 2, 3])
    np.testing.assert_array_equal(blocks.columns, [0, 1, 2])
    np.testing.assert_array_equal(blocks.values[0], [0, 1, 2, 0])
    np.testing.assert_array_equal(blocks.values[2], [0, 7, 0, 0])
    assert not np.shares_memory(blocks.values, weight.data)


def test_unsorted_and_duplicate_csr_entries_are_summed_before_blocking():
    indptr = np.array([0, 3])
    indices = np.array([3, 0, 3])  # unsorted, column 3 twice
    data = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    weight = sp.csr_matrix((data, indices, indptr), shape=(1, 4))
    blocks = _kernels.CheckedBlockCSR.from_csr(weight, 4)
    np.testing.assert_array_equal(blocks.values, [[2.0, 0.0, 0.0, 5.0]])
    np.testing.assert_array_equal(weight.indices, [3, 0, 3])  # the caller's, as given


@pytest.mark.parametrize("bad", [0, -8, 2.5, True])
def test_block_size_that_is_not_a_positive_integer_is_refused(bad):
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        _kernels.CheckedBlockCSR.from_csr(block_weight(4, 16, 8, 0.5), bad)


# the checks on the way in -----------------------------------------------------------


def test_valid_parts_multiply_as_the_dense_weight_they_stand_for():
    blocks = _kernels.CheckedBlockCSR(*valid_parts(), 20)
    dense = np.zeros((3, 24), dtype=np.float32)
    dense[0, 0:8], dense[0, 16:24], dense[2, 8:16] = valid_parts()[2]
    X = sp.csr_matrix(np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
    got = _kernels.csr_times_blocks(X, identity_map(3), blocks)
    np.testing.assert_array_equal(got, X.toarray() @ dense[:, :20])


@pytest.mark.parametrize("bad", [3, 2**15 - 1, -1])
def test_block_index_outside_the_column_blocks_is_refused(bad):
    indptr, columns, values = valid_parts()
    columns[1] = bad  # 20 columns in blocks of 8: blocks 0 to 2
    with pytest.raises(ValueError, match="column block index"):
        _kernels.CheckedBlockCSR(indptr, columns, values, 20)


@pytest.mark.parametrize(
    "indptr",
    [[0, 2, 1, 3], [1, 2, 2, 3], [0, 2, 2, 4], [0, 2, 2, 2], [[0, 2, 2, 3]], []],
    ids=[
        "decreasing",
        "not-from-0",
        "past-the-blocks",
        "short-of-them",
        "2-d",
        "empty",
    ],  # fmt: skip
)
def test_pointers_that_do_not_cover_the_blocks_in_order_are_refused(indptr):
    _, columns, values = valid_parts()
    with pytest.raises(ValueError, match="pointers|indptr must be a 1-d"):
        _kernels.CheckedBlockCSR(np.array(indptr), columns, values, 20)


@pytest.mark.parametrize(
    "values, match",
    [
        (np.zeros(24, dtype=np.float32), "2-d array"),
        (np.zeros((3, 8), dtype=np.int32), "float32 or float64"),
        (np.zeros((3, 8), dtype=np.float16), "float32 or float64"),
        (np.zeros((3, 8), dtype=np.int8), "float32 or float64"),  # int8 on request
        (np.zeros((2, 8), dtype=np.float32), "one index per block"),
        (np.zeros((3, 0), dtype=np.float32), "2-d array"),
    ],
)
def test_values_of_the_wrong_shape_or_dtype_are_refused(values, match):
    indptr, columns, _ = valid_parts()
    with pytest.raises(ValueError, match=match):
        _kernels.CheckedBlockCSR(indptr, columns, values, 20)


def test_float_block_indices_are_refused_and_wide_ones_kept_as_stored():
    indptr, columns, values = valid_parts()
    with pytest.raises(ValueError, match="indices must be a 1-d array of integers"):
        _kernels.CheckedBlockCSR(indptr, columns.astype(float), values, 20)
    wide = _kernels.CheckedBlockCSR(indptr, columns.astype(np.int64), values, 20)
    assert wide.columns.dtype == np.int64
    odd = _kernels.CheckedBlockCSR(indptr, columns.astype(np.uint8), values, 20)
    assert odd.columns.dtype == np.int64  # outside the fixed set: widened once


def test_non_contiguous_values_are_copied_and_multiply_the_same():
    indptr, columns, values = valid_parts()
    strided = np.repeat(values, 2, axis=1)[:, ::2]
    assert not strided.flags.c_contiguous
    blocks = _kernels.CheckedBlockCSR(indptr, columns, strided, 20)
    assert blocks.values.flags.c_contiguous
    X = batch(5, 3, seed=4)
    np.testing.assert_array_equal(
        _kernels.csr_times_blocks(X, identity_map(3), blocks),
        _kernels.csr_times_blocks(
            X, identity_map(3), _kernels.CheckedBlockCSR(indptr, columns, values, 20)
        ),
    )


def test_the_product_takes_only_checked_blocks_of_the_inputs_dtype():
    X = batch(4, 3)
    with pytest.raises(TypeError, match="CheckedBlockCSR"):
        _kernels.csr_times_blocks(X, identity_map(3), sp.csr_matrix((3, 20)))
    blocks = _kernels.CheckedBlockCSR(*valid_parts(), 20)
    with pytest.raises(ValueError, match="weight must hold float64"):
        _kernels.csr_times_blocks(X.astype(np.float64), identity_map(3), blocks)
    with pytest.raises(ValueError, match="column_map has entry 3"):
        _kernels.csr_times_blocks(X, np.array([0, 1, 3]), blocks)


# the compact network's layout -------------------------------------------------------


def two_layers(first, layouts=None):
    second = np.random.default_rng(5).standard_normal((first.shape[1], 3))
    return CompactMLP(
        n_features=first.shape[0],
        input_index=np.arange(first.shape[0]),
        weights=[first, second.astype(np.float32)],
        biases=[np.full(first.shape[1], 0.1), np.zeros(3)],
        layouts=layouts,
    )


def test_blocks_are_chosen_where_the_model_predicts_they_win_and_only_there():
    # a weight far larger than the cache: block-csr beats the CSR walk and dense rows
    wide = block_weight(80_000, 256, 8, 0.05)
    assert choose_layouts([wide, np.ones((256, 3))]) == ["block-csr", "dense"]
    # the same density placed at random has no whole runs: never blocks (the
    # CSR walk's fixed cost then loses to whole rows at 5%, wins at 1%)
    rng = np.random.default_rng(0)
    scattered = sp.random(80_000, 256, density=0.05, format="csr", random_state=rng)
    assert choose_layouts([scattered.astype(np.float32), np.ones((256, 3))])[0] == (
        "row-sparse"
    )
    thin = sp.random(80_000, 256, density=0.01, format="csr", random_state=rng)
    assert choose_layouts([thin.astype(np.float32), np.ones((256, 3))])[0] == "csr"
    # int8 blocks were not measured: they never go block-csr
    as_int8 = wide.astype(np.int8)
    assert choose_layouts([as_int8, np.ones((256, 3), np.int8)])[0] != "block-csr"
    # in cache, whole rows of embedding_bag win at this density
    assert choose_layouts([block_weight(2_000, 256, 8, 0.05)])[0] == "row-sparse"


def test_block_width_is_the_widest_run_the_weight_keeps_whole():
    assert _block_width(block_weight(200, 64, 16, 0.3)) == 16
    assert _block_width(block_weight(200, 64, 8, 0.3)) == 8
    assert _block_width(block_weight(200, 64, 4, 0.3)) == 4


def test_block_layout_predicts_what_the_csr_layout_predicts():
    first = block_weight(500, 61, 8, 0.1)
    X = batch(40, 500)
    blocked = two_layers(first, ["block-csr", "dense"])
    walked = two_layers(first, ["csr", "dense"])
    assert "block-csr" in repr(blocked)
    np.testing.assert_allclose(
        blocked.decision_function(X), walked.decision_function(X), rtol=1e-6
    )
    # dense input takes the CSR weight the layout also holds
    np.testing.assert_allclose(
        blocked.decision_function(X.toarray()), walked.decision_function(X), rtol=1e-6
    )
    one = blocked.decision_function(X[5:6])
    np.testing.assert_array_equal(one[0], blocked.decision_function(X)[5])


def test_nbytes_counts_the_blocks_and_shares_the_values_when_runs_are_whole():
    whole = two_layers(block_weight(500, 64, 8, 0.1), ["block-csr", "dense"])
    walked = dataclasses.replace(whole, layouts=["csr", "dense"])
    blocks = whole._sparse_first.keywords["weight"]
    assert whole.nbytes == walked.nbytes + blocks.columns.nbytes + blocks.indptr.nbytes
    ragged = two_layers(block_weight(500, 61, 8, 0.1), ["block-csr", "dense"])
    walked = dataclasses.replace(ragged, layouts=["csr", "dense"])
    blocks = ragged._sparse_first.keywords["weight"]
    assert ragged.nbytes == walked.nbytes + blocks.nbytes  # padded: values copied


def test_block_layout_is_for_the_first_layer_only():
    with pytest.raises(ValueError, match=r"layouts\[1\] must be one of"):
        two_layers(block_weight(50, 16, 8, 0.5), ["csr", "block-csr"])


def test_a_forced_block_layout_on_scattered_weights_pads_and_stays_exact():
    rng = np.random.default_rng(3)
    first = sp.random(300, 50, density=0.1, format="csr", random_state=rng)
    first = first.astype(np.float32)
    X = batch(30, 300)
    np.testing.assert_allclose(
        two_layers(first, ["block-csr", "dense"]).decision_function(X),
        two_layers(first, ["csr", "dense"]).decision_function(X),
        rtol=1e-6,
    )


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_block_padding_by_row_chunks_counts_every_zero_a_block_copy_stores(
    chunk, monkeypatch
):
    # Padding is counted a few rows at a time (its temporaries stay small at
    # hashing width); whatever the chunk, it is the brute-force count.
    monkeypatch.setattr(_kernels, "_PADDING_CHUNK", chunk)
    rng = np.random.default_rng(0)
    for trial in range(40):
        n, m = int(rng.integers(1, 30)), int(rng.integers(1, 40))
        matrix = sp.random(n, m, density=rng.random(), format="csr", random_state=trial)
        kept = matrix.toarray() != 0
        for width in (1, 3, 8, 16):
            expected = 0
            for i in range(n):
                for j in range(0, m, width):
                    run = kept[i, j : j + width]
                    expected += int(run.size - run.sum()) if run.any() else 0
            assert _kernels.block_padding(matrix, width) == expected
