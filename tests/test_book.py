"""The solver-made opening book (``connectx_gym.data.book``): its numbering, its file format, and the
shipped ``book-6x7.bin`` against the solver and against what the builder makes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from connectx_gym.data import book as book_module
from connectx_gym.data.book import (
    BOOK_FILE,
    BOOK_PLIES,
    BOOK_TABLE_SHA256,
    MAGIC,
    Book,
    build_book,
    canonical_number,
    columns_of_moves,
    decode_book,
    encode_book,
    enumerate_positions,
    load_book,
    mirror_bits,
    ply_offsets,
)
from connectx_gym.data.book_index import position_number
from connectx_gym.errors import UserError
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.search import solver as oracle

needs_solver = pytest.mark.skipif(
    not oracle.solver_available(), reason='the solver extra is not installed (pip install -e ".[solver]")'
)
#: distinct positions (mirror images counted twice) after 0..5 moves where the game goes on
POSITIONS_BY_PLY = (1, 7, 49, 238, 1120, 4263)


@pytest.fixture(scope="module")
def shipped():
    return load_book()


def all_positions(plies):
    """Every position (as columns) of up to ``plies`` moves where the game goes on, by brute force."""
    found = [set() for _ in range(plies + 1)]
    for count in range(plies + 1):
        for moves in itertools.product(range(7), repeat=count):
            position = Position(geometry())
            try:
                for column in moves:
                    if position.done:
                        raise ValueError("over")
                    position.play(column)
            except ValueError:
                continue
            if not position.done:
                found[count].add(columns_of_moves(moves))
    return found


def random_lines(count, seed, max_plies=BOOK_PLIES):
    """Move lists of random games of 0..max_plies moves where the game goes on."""
    rng = np.random.default_rng(seed)
    lines = []
    while len(lines) < count:
        position, moves = Position(geometry()), []
        target = int(rng.integers(0, max_plies + 1))
        while len(moves) < target and not position.done:
            column = int(rng.choice(position.legal_moves()))
            position.play(column)
            moves.append(column)
        if not position.done:
            lines.append(moves)
    return lines


# ---------------------------------------------------------------------- numbering
def test_numbers_are_dense_distinct_and_ordered_by_stones():
    offsets = ply_offsets(4)
    for stones, positions in enumerate(all_positions(4)):
        numbers = {position_number(columns, offsets) for columns in positions}
        assert len(numbers) == len(positions)
        assert all(offsets[stones] <= n < offsets[stones + 1] for n in numbers)


def test_enumeration_stores_each_mirror_pair_once_and_finds_every_position():
    levels = enumerate_positions(5)
    everything = all_positions(5)
    assert tuple(len(level) for level in everything) == POSITIONS_BY_PLY
    offsets = ply_offsets(5)
    for level, positions in zip(levels, everything):
        expected = {canonical_number(columns, offsets)[0] for columns in positions}
        assert [number for number, _ in level] == sorted(expected)
        # the moves stored reach the orientation stored
        assert all(position_number(columns_of_moves(moves), offsets) == n for n, moves in level)


def test_a_position_and_its_mirror_share_a_number():
    offsets = ply_offsets(BOOK_PLIES)
    for moves in random_lines(200, seed=1):
        columns = columns_of_moves(moves)
        number, mirrored = canonical_number(columns, offsets)
        assert canonical_number(columns[::-1], offsets)[0] == number
        assert position_number(columns[::-1] if mirrored else columns, offsets) == number
    assert mirror_bits(0b0000011) == 0b1100000 and mirror_bits(0b0001000) == 0b0001000


# ---------------------------------------------------------------------- the file format
def test_encoding_round_trips_and_is_deterministic():
    rng = np.random.default_rng(0)
    table = bytes(rng.integers(0, 128, size=ply_offsets(4)[-1], dtype=np.uint8))
    book = Book(4, table)
    data = encode_book(book)
    assert data == encode_book(Book(4, bytes(table))) and data.startswith(MAGIC)
    assert decode_book(data) == book
    with pytest.raises(ValueError, match=f"has {len(table)} entries, not {len(table) - 1}"):
        encode_book(Book(4, table[:-1]))


@pytest.mark.parametrize(
    "case, needle",
    [
        ("empty", "not a connectx_gym opening book"),
        ("magic", "not a connectx_gym opening book"),
        ("header", "expected a 6x7 inarow 4 book"),
        ("stream", "is corrupt"),
        ("count", "does not match its header"),
    ],
)
def test_bad_book_files_are_user_errors_naming_the_file(tmp_path, case, needle):
    data = encode_book(Book(2, bytes([1]) * ply_offsets(2)[-1]))
    if case == "empty":
        data = b""
    elif case == "magic":
        data = b"X" + data[1:]
    elif case == "header":
        data = data[: len(MAGIC)] + bytes([5]) + data[len(MAGIC) + 1 :]
    elif case == "stream":
        data = data[:-4]
    elif case == "count":
        data = data[: len(MAGIC) + 4] + (12345).to_bytes(4, "little") + data[len(MAGIC) + 8 :]  # positions
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    with pytest.raises(UserError, match=needle) as error:
        load_book(path)
    assert "bad.bin" in str(error.value)
    with pytest.raises(UserError, match="cannot read the opening book"):
        load_book(tmp_path / "missing.bin")


# ---------------------------------------------------------------------- the shipped book
def test_shipped_book_is_the_recorded_one(shipped):
    assert shipped.plies == BOOK_PLIES
    assert shipped.sha256() == BOOK_TABLE_SHA256
    assert len(shipped.table) == ply_offsets(BOOK_PLIES)[-1]
    # no book move is ever a full or a missing column; and the empty board's only perfect move is the centre
    assert max(shipped.table) < 128
    assert shipped.best_moves([]) == [3]
    assert shipped.best_moves([3] * 6) == [2, 4]


def test_book_answers_only_games_in_progress_up_to_its_depth(shipped):
    assert shipped.best_moves([0, 1, 0, 1, 0, 1, 0]) is None  # the first player has won
    assert shipped.best_moves([3] * 6 + [2] * (BOOK_PLIES - 5)) is None  # one stone too many
    assert shipped.best_moves([0, 1, 0, 1, 0, 1]) is not None


@needs_solver
def test_book_entries_are_the_solvers_perfect_moves_in_both_orientations(shipped):
    solver = oracle.Oracle()
    lines = random_lines(150, seed=2)
    assert {len(line) for line in lines} >= set(range(BOOK_PLIES + 1)) - {0}
    for moves in lines:
        best = oracle.best_columns(solver.scores_of_moves(moves))
        assert shipped.best_moves(moves) == best, moves
        assert shipped.best_moves([6 - c for c in moves]) == sorted(6 - c for c in best), moves


@needs_solver
def test_builder_makes_the_shipped_book(shipped, tmp_path, capsys):
    plies = 4
    built = build_book(plies)
    assert built.table == shipped.table[: ply_offsets(plies)[-1]]
    assert built.positions == sum(len(level) for level in enumerate_positions(plies))
    output = tmp_path / "book.bin"
    assert book_module.main(["--plies", str(plies), "--processes", "1", "--output", str(output)]) == 0
    assert output.read_bytes() == encode_book(built)
    assert f"{built.positions} positions up to {plies} plies" in capsys.readouterr().out


@pytest.mark.slow
@needs_solver
def test_full_rebuild_is_byte_identical(tmp_path):
    output = tmp_path / "book.bin"
    assert book_module.main(["--output", str(output)]) == 0
    assert output.read_bytes() == BOOK_FILE.read_bytes()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--plies", "13"], "--plies must be an integer from 0 to 12, got '13'"),
        (["--plies", "x"], "--plies must be an integer from 0 to 12, got 'x'"),
        (["--processes", "0"], "--processes must be an integer from 1 to 256, got '0'"),
        (["--output", "{tmp}/missing/book.bin"], "is not a file in an existing directory"),
        (["--output", "{tmp}"], "is not a file in an existing directory"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, needle):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    assert book_module.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: ") and needle in err
    assert list(tmp_path.iterdir()) == []
