"""The opening book of the Kaggle submission: ``python -m connectx_gym.data.book`` rebuilds it.

For every position of 6x7 Connect-4 with 4 in a row that is reachable from the empty board in at
most ``BOOK_PLIES`` moves and where the game goes on, the book holds the set of perfect moves: the
columns with the best exact solver score (``connectx_gym.search.solver.best_columns``), as bits of one
byte (bit ``c`` for column ``c``). A position and its mirror image are stored once.

Positions are numbered densely, so the book stores no keys: a position with ``k`` stones is
numbered ``offset[k] + heights_rank * C(k, ceil(k / 2)) + colours_rank``, where ``heights_rank`` is
the rank of its column heights among all ways of putting ``k`` stones into 7 columns and
``colours_rank`` the rank of the places of the first player's stones in the stone sequence read
column by column, bottom up. A position lives under the smaller number of its own and its mirror
image's; the bits stored are those of the orientation with that number. The table holds one byte
per number up to the last position of ``BOOK_PLIES`` stones, 0 where no position lives (mirror
images, unreachable or finished games), and the file stores it compressed:

``MAGIC``, then rows, columns, in a row, plies (one byte each), the number of positions and the
table's length (little-endian 32-bit), then the table as one zlib stream (level 9).

The numbering and the lookup are :mod:`connectx_gym.data.book_index`, which the Kaggle file embeds. The
build reads only the solver (the ``[solver]`` extra): never the labelled evaluation positions.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import struct
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connectx_gym.cli import ArgumentParser, run_command
from connectx_gym.data import DATA_BOARD, DATA_DIR, book_index
from connectx_gym.data.book_index import canonical_number
from connectx_gym.errors import UserError
from connectx_gym.rules.bitboard import geometry
from connectx_gym.runtime.files import write_atomic
from connectx_gym.search.solver import Oracle, best_columns, import_solver

BOOK_FILE = DATA_DIR / "book-6x7.bin"
#: the book's depth: every position with up to this many stones
BOOK_PLIES = 10
#: the most plies ``--plies`` accepts (the solver's own book reaches 12; the table grows 3x a ply)
MAX_PLIES = 12
MAGIC = b"CXBOOK\x00\x01"
_HEADER = struct.Struct("<BBBBII")
#: SHA-256 of the shipped book's uncompressed table (a test checks the file against it)
BOOK_TABLE_SHA256 = "15d51f91fbe8773241ceb0703e397992f1e9ae51a70fcffbe5dc8d982fb2f184"

ROWS, COLUMNS = DATA_BOARD["rows"], DATA_BOARD["columns"]
#: a position as the marks (1 moves first, 2) in each column, bottom up
Columns = tuple[tuple[int, ...], ...]


# ---------------------------------------------------------------------- numbering
def ply_offsets(plies: int) -> list[int]:
    """``offsets[k]``: the first number of the positions with ``k`` stones, for ``k`` up to ``plies + 1``."""
    return book_index.ply_offsets(COLUMNS, plies)


def mirror_bits(bits: int) -> int:
    """A set of columns as bits, seen in the mirror: column ``c`` becomes ``COLUMNS - 1 - c``."""
    return book_index.mirror_bits(bits, COLUMNS)


def columns_of_moves(moves: Sequence[int]) -> Columns:
    """The position after the 0-based ``moves`` from the empty board (no check of the rules)."""
    columns: list[list[int]] = [[] for _ in range(COLUMNS)]
    for ply, column in enumerate(moves):
        columns[column].append(1 + ply % 2)
    return tuple(tuple(column) for column in columns)


# ---------------------------------------------------------------------- the book
@dataclass(frozen=True)
class Book:
    """The table of best-column bits by position number, for every position up to ``plies`` stones."""

    plies: int
    table: bytes

    @property
    def positions(self) -> int:
        return len(self.table) - self.table.count(0)

    def best_columns(self, columns: Sequence[Sequence[int]]) -> list[int] | None:
        """The perfect moves of a position (marks per column, bottom up), or None when it is not in the book."""
        if len(columns) != COLUMNS:
            return None
        return book_index.book_moves(self.table, self.plies, columns)

    def best_moves(self, moves: Sequence[int]) -> list[int] | None:
        """The perfect moves after the 0-based ``moves`` from the empty board, or None when not in the book."""
        return self.best_columns(columns_of_moves(moves))

    def sha256(self) -> str:
        return hashlib.sha256(self.table).hexdigest()


def encode_book(book: Book) -> bytes:
    """The book file's bytes (the same bytes for the same book)."""
    if len(book.table) != ply_offsets(book.plies)[-1]:
        raise ValueError(
            f"a book of {book.plies} plies has {ply_offsets(book.plies)[-1]} entries, not {len(book.table)}"
        )
    header = _HEADER.pack(ROWS, COLUMNS, DATA_BOARD["inarow"], book.plies, book.positions, len(book.table))
    return MAGIC + header + zlib.compress(book.table, 9)


@dataclass(frozen=True)
class BookFile:
    """A book file's header and its compressed table, as the submission embeds it."""

    plies: int
    positions: int
    table_length: int
    compressed: bytes


def read_book_file(data: bytes, source: str = "the book") -> BookFile:
    """Parse a book file's bytes; anything else is a ``UserError`` naming ``source``."""
    start = len(MAGIC) + _HEADER.size
    if len(data) < start or not data.startswith(MAGIC):
        raise UserError(f"{source} is not a connectx_gym opening book (no {MAGIC!r} header)")
    rows, columns, inarow, plies, positions, length = _HEADER.unpack_from(data, len(MAGIC))
    if (rows, columns, inarow) != (ROWS, COLUMNS, DATA_BOARD["inarow"]) or length != ply_offsets(plies)[-1]:
        raise UserError(
            f"{source} is a book for {rows}x{columns} inarow {inarow} with {length} entries for {plies} plies; "
            f"expected a {ROWS}x{COLUMNS} inarow {DATA_BOARD['inarow']} book"
        )
    return BookFile(plies, positions, length, data[start:])


def decode_book(data: bytes, source: str = "the book") -> Book:
    """The book in a book file's bytes; a corrupt file is a ``UserError`` naming ``source``."""
    header = read_book_file(data, source)
    try:
        table = zlib.decompress(header.compressed)
    except zlib.error as error:
        raise UserError(f"{source} is corrupt: {error}") from None
    book = Book(header.plies, table)
    if len(table) != header.table_length or book.positions != header.positions:
        raise UserError(f"{source} is corrupt: its table does not match its header")
    return book


def load_book(path: str | os.PathLike | None = None) -> Book:
    """The book in ``path`` (default: the shipped ``book-6x7.bin``)."""
    path = Path(path) if path is not None else BOOK_FILE
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read the opening book '{path}': {error.strerror or error}") from None
    return decode_book(data, f"the opening book '{path}'")


# ---------------------------------------------------------------------- building
def enumerate_positions(plies: int) -> list[list[tuple[int, bytes]]]:
    """Per stone count up to ``plies``: (number, moves reaching that orientation) of every position
    where the game goes on, one per mirror pair, sorted by number."""
    offsets = ply_offsets(plies)
    shape = geometry(**DATA_BOARD)
    height = shape.column_height
    empty: Columns = ((),) * COLUMNS
    frontier = {empty: (0, 0, b"")}  # position -> (stones of the player to move, all stones, moves)
    found = [[(0, b"")]]
    for ply in range(1, plies + 1):
        children: dict[Columns, tuple[int, int, bytes]] = {}
        for columns, (own, mask, moves) in frontier.items():
            for c in range(COLUMNS):
                if len(columns[c]) == ROWS:
                    continue
                child = columns[:c] + (columns[c] + (1 + (ply - 1) % 2,),) + columns[c + 1 :]
                if child in children or child[::-1] in children:
                    continue
                bit = 1 << (c * height + len(columns[c]))
                if shape.has_line(own | bit):
                    continue  # the game is over
                children[child] = (mask ^ own, mask | bit, moves + bytes([c]))
        frontier = children
        level = []
        for columns, (_, _, moves) in children.items():
            number, mirrored = canonical_number(columns, offsets)
            level.append((number, bytes(COLUMNS - 1 - c for c in moves) if mirrored else moves))
        found.append(sorted(level))
    return found


_ORACLE: list = []


def best_bits(moves: bytes) -> int:
    """The perfect moves after ``moves`` as column bits, from the solver (one per process)."""
    if not _ORACLE:
        _ORACLE.append(Oracle())
    return sum(1 << c for c in best_columns(_ORACLE[0].scores_of_moves(list(moves))))


def build_book(plies: int, processes: int = 1, log=None) -> Book:
    """Enumerate and solve every position up to ``plies`` stones (needs the ``[solver]`` extra)."""
    import_solver("building the opening book")
    started = time.perf_counter()
    levels = enumerate_positions(plies)
    items = [item for level in levels for item in level]
    if log:
        log(f"{len(items)} positions ({', '.join(map(str, map(len, levels)))} by ply) "
            f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
    moves = [item[1] for item in items]
    if processes > 1:
        with mp.get_context("fork").Pool(processes) as pool:
            bits = pool.map(best_bits, moves, chunksize=1024)
    else:
        bits = [best_bits(line) for line in moves]
    table = bytearray(ply_offsets(plies)[-1])
    for (number, _), value in zip(items, bits):
        table[number] = value
    return Book(plies, bytes(table))


# ---------------------------------------------------------------------- command
def _run(argv: Sequence[str] | None) -> int:
    parser = ArgumentParser(prog="python -m connectx_gym.data.book", description=__doc__.split("\n")[0])
    parser.add_argument("--plies", default=str(BOOK_PLIES), help=f"book depth (default: {BOOK_PLIES})")
    parser.add_argument("--processes", default=str(os.cpu_count() or 1), help="solver processes (default: all cores)")
    parser.add_argument("--output", default=str(BOOK_FILE), help="book file to write (default: the shipped one)")
    args = parser.parse_args(argv)
    plies = _integer(args.plies, "--plies", 0, MAX_PLIES)
    processes = _integer(args.processes, "--processes", 1, 256)
    output = Path(args.output)
    if output.is_dir() or not output.parent.is_dir():
        raise UserError(f"--output '{output}' is not a file in an existing directory")
    started = time.perf_counter()
    book = build_book(plies, processes, log=lambda line: print(line, file=sys.stderr))
    data = encode_book(book)
    write_atomic(output, data)
    print(
        f"wrote {output}: {len(data)} bytes, {book.positions} positions up to {plies} plies, "
        f"table sha256 {book.sha256()}, in {time.perf_counter() - started:.0f} s"
    )
    return 0


def _integer(value: str, option: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise UserError(f"{option} must be an integer from {low} to {high}, got {value!r}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
