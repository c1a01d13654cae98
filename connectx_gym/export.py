"""``python -m connectx_gym.export``: write a trained checkpoint as one self-contained Kaggle submission file.

The file is built by :mod:`connectx_gym.submission.build` (rendered and test-run in memory, then
written atomically); ``--search-ms N`` gives its agent a per-move alpha-beta budget and, on 6x7
boards with 4 in a row, the solver-made opening book (``--no-book``: without it), and
``--check`` plays it through ``kaggle_environments`` against ``random`` and ``negamax`` in both
seats (:mod:`connectx_gym.submission.check`), exiting 1 on any invalid move, error or timeout.
The checkpoint is read without unpickling anything (``--trust-checkpoint`` for a file without
metadata); ``--trust-checkpoint --upgrade-checkpoint NEW.zip`` instead writes a copy of a trusted
older checkpoint with its metadata, and ``--weights-only NEW.zip`` a copy without the optimizer's
state (what the shipped model carries). Bad input is one ``error:`` line and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from connectx_gym.agents.checkpoint import board_text
from connectx_gym.agents.kaggle import require_kaggle
from connectx_gym.cli import ArgumentParser, integer_option, run_command
from connectx_gym.data.book import BOOK_PLIES
from connectx_gym.errors import UserError
from connectx_gym.runtime.checkpoints import (
    METADATA_MEMBER,
    TRUST_FLAG,
    add_trust_option,
    strip_optimizer,
    trusted_checkpoints,
    upgrade_checkpoint,
)
from connectx_gym.submission.build import MAX_SEARCH_MS, ExportResult, check_search_ms, embedded_size, export
from connectx_gym.submission.check import DEFAULT_CHECK_GAMES, check_submission


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m connectx_gym.export",
        description="Write a trained checkpoint as one self-contained Kaggle ConnectX submission file "
        "(standard library + numpy only).",
    )
    parser.add_argument("checkpoint", help="MaskablePPO checkpoint .zip, e.g. models/<run>/best_model.zip")
    parser.add_argument(
        "-o", "--output", default="submission.py", help="submission file to write (default: submission.py)"
    )
    parser.add_argument(
        "--search-ms",
        default=None,
        metavar="N",
        help=f"per-move alpha-beta search budget in ms (1..{MAX_SEARCH_MS}); default: greedy policy only",
    )
    parser.add_argument(
        "--no-book",
        action="store_true",
        help="with --search-ms on a 6x7 board with 4 in a row: leave out the solver-made opening book (the "
        f"perfect moves of every position up to {BOOK_PLIES} stones)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="play the written file through kaggle_environments vs random and negamax, both seats",
    )
    parser.add_argument(
        "--check-games",
        default=str(DEFAULT_CHECK_GAMES),
        metavar="N",
        help=f"games per opponent per seat for --check (default: {DEFAULT_CHECK_GAMES})",
    )
    parser.add_argument("--seed", default="0", metavar="N", help="seed of Python's random for --check (default: 0)")
    add_trust_option(parser)
    parser.add_argument(
        "--upgrade-checkpoint",
        metavar="NEW.zip",
        help=f"instead of a submission, write a copy of the checkpoint with its {METADATA_MEMBER} (the network's "
        f"shape, board and activation), so that it loads without unpickling; needs {TRUST_FLAG}",
    )
    parser.add_argument(
        "--weights-only",
        metavar="NEW.zip",
        help="instead of a submission, write a copy of the checkpoint without its optimizer's state (a fresh "
        "optimizer in its place; about a third of the size): for shipping a model that runs start from "
        "(train.init_from) rather than resume",
    )
    args = parser.parse_args(argv)
    if args.upgrade_checkpoint is not None and args.weights_only is not None:
        raise UserError("--upgrade-checkpoint and --weights-only each write a checkpoint; give one of them")
    if args.upgrade_checkpoint is not None:
        check_upgrade(args.upgrade_checkpoint, args.trust_checkpoint)
    if args.weights_only is not None:
        check_output_zip("--weights-only", args.weights_only, args.checkpoint)
    args.search_ms = check_search_ms(args.search_ms)
    if args.check:
        require_kaggle("--check (it plays the file through kaggle_environments)")
    args.check_games = integer_option("--check-games", args.check_games, 1)
    args.seed = integer_option("--seed", args.seed, 0)
    return args


def _format_size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _wrote_line(result: ExportResult) -> str:
    board = result.board
    if result.search_ms is None:
        search = "off"
    elif result.book is not None:
        book = result.book
        search = (
            f"{result.search_ms} ms/move; opening book {book.plies} plies, {book.positions:,} positions, "
            f"{_format_size(embedded_size(book))}"
        )
    elif result.no_book_reason == "off":
        search = f"{result.search_ms} ms/move; opening book off"
    else:
        search = f"{result.search_ms} ms/move; no opening book (6x7 inarow 4 only)"
    return (
        f"wrote {result.path}: {_format_size(result.size_bytes)}, loads in {1000 * result.load_seconds:.0f} ms "
        f"(policy {result.architecture}; board {board['rows']}x{board['columns']} inarow {board['inarow']}; "
        f"search {search})"
    )


def check_upgrade(output: str, trusted: bool) -> None:
    """Refuse ``--upgrade-checkpoint`` without ``--trust-checkpoint``, or to a path that cannot be written."""
    if not trusted:
        raise UserError(
            f"--upgrade-checkpoint reads the checkpoint with SB3's full loader, which unpickles objects from the "
            f"file and so can run code from it; pass {TRUST_FLAG} too if you trust the file"
        )
    check_output_zip("--upgrade-checkpoint", output)


def check_output_zip(option: str, output: str, checkpoint: str | None = None) -> None:
    """Refuse an ``option`` whose checkpoint ``output`` is not a ``.zip``, cannot be written, or is the input."""
    if not output.lower().endswith(".zip"):
        raise UserError(f"{option} must name a .zip file, got {output!r}")
    if checkpoint is not None and os.path.abspath(output) == os.path.abspath(checkpoint):
        raise UserError(f"{option} {output!r} is the checkpoint itself; name another file")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UserError(f"{option} {output!r}: cannot write to the folder {folder!r}")


def _run(argv: Sequence[str] | None) -> int:
    args = parse_args(argv)
    if args.upgrade_checkpoint is not None:
        board = upgrade_checkpoint(args.checkpoint, args.upgrade_checkpoint)
        print(f"wrote {args.upgrade_checkpoint}: the checkpoint with its {METADATA_MEMBER} ({board_text(board)})")
        return 0
    if args.weights_only is not None:
        before, after = strip_optimizer(args.checkpoint, args.weights_only)
        print(
            f"wrote {args.weights_only}: the checkpoint without its optimizer's state, "
            f"{_format_size(after)} (was {_format_size(before)})"
        )
        return 0
    with trusted_checkpoints(args.trust_checkpoint):
        result = export(args.checkpoint, args.output, args.search_ms, book=not args.no_book)
    print(_wrote_line(result))
    if not args.check:
        return 0
    started = time.perf_counter()
    report = check_submission(result.path, result.board, args.check_games, seed=args.seed)
    for line in report.lines():
        print(line)
    print(f"check took {time.perf_counter() - started:.1f} s")
    return 0 if report.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
