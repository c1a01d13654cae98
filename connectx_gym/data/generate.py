"""Rebuild the labelled positions and the opening suite: ``python -m connectx_gym.data.generate``.

Positions come from games between varied players, each move replaced by a random one with a
per-game probability (noise) so that no player replays one line: random, Kaggle's negamax,
alpha-beta at depths 1-6, the perfect solver and the shipped trained model. Every position of
every game is a candidate; a candidate is left out when the player to move can win at once (the
game is decided within one ply) or when every legal column scores the same (no move can be
wrong). Mirror images count as one position. Each phase (plies 0-8, 9-20, 21+) gets its quota,
drawn at random from its candidates, and every column of a drawn position is scored by the solver.

Openings are every position of 2-6 plies (mirror images as one) whose solver score for the player
to move lies within ``--opening-margin`` of a draw; a quota per ply is drawn from them.
Everything is seeded: the same seed and code give the same files. Needs the ``[solver]`` extra.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from connectx_gym.agents.specs import make_opponent
from connectx_gym.data import OPENINGS_FILE, PHASES, POSITIONS_FILE, phase_of
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.runtime.files import write_atomic
from connectx_gym.search.solver import Oracle

#: players of the generating games and their weights (the slow deep searches are drawn less often)
PLAYERS = {
    "random": 1.0,
    "negamax": 1.0,
    "alphabeta:1": 1.0,
    "alphabeta:2": 1.0,
    "alphabeta:3": 1.0,
    "alphabeta:4": 0.8,
    "alphabeta:5": 0.5,
    "alphabeta:6": 0.4,
    "solver": 1.0,
    "checkpoint": 1.0,
}
NOISE_LEVELS = (0.0, 0.05, 0.15, 0.3)
OPENING_PLIES = {2: 12, 3: 22, 4: 28, 5: 30, 6: 28}
PRETRAINED = Path(__file__).resolve().parents[2] / "models" / "pretrained" / "model.zip"


def canonical_key(moves: Sequence[int], columns: int = 7) -> tuple[int, int]:
    """One key for a position and its mirror image: the smaller of the two Kaggle boards' encodings."""
    position = Position(geometry())
    for column in moves:
        position.play(column)
    board = np.array(position.to_kaggle(), dtype=np.int64).reshape(-1, columns)
    codes = [int("".join(map(str, b.ravel())), 3) for b in (board, board[:, ::-1])]
    return min(codes), len(moves)


# ---------------------------------------------------------------------- games
_WORKER: dict[str, Any] = {}


def _make_player(spec: str) -> Any:
    if spec == "checkpoint":
        return make_opponent(f"checkpoint:{PRETRAINED}")
    return make_opponent(spec)


def _play_game(job: tuple[int, int, str, str, float, float]) -> dict[str, Any]:
    """One seeded game between two noisy players; its moves and who played them."""
    _, seed, first, second, noise_first, noise_second = job
    players = _WORKER.setdefault("players", {})
    sides = []
    for spec in (first, second):
        if spec not in players:
            players[spec] = _make_player(spec)
        sides.append(players[spec])
    rng = np.random.default_rng(seed)
    position = Position(geometry())
    moves: list[int] = []
    while not position.done:
        side = position.moves_played % 2
        legal = position.legal_moves()
        if rng.random() < (noise_first, noise_second)[side]:
            column = legal[int(rng.integers(len(legal)))]
        else:
            column = int(sides[side].act(position, rng))
        position.play(column)
        moves.append(column)
    return {"moves": moves, "source": f"{first} (noise {noise_first:g}) vs {second} (noise {noise_second:g})"}


def game_jobs(games: int, seed: int) -> list[tuple[int, int, str, str, float, float]]:
    rng = np.random.default_rng(seed)
    names = list(PLAYERS)
    weights = np.array([PLAYERS[n] for n in names]) / sum(PLAYERS.values())
    jobs = []
    for index in range(games):
        first, second = (names[i] for i in rng.choice(len(names), size=2, p=weights))
        noise = rng.choice(NOISE_LEVELS, size=2)
        jobs.append((index, int(rng.integers(2**31)), first, second, float(noise[0]), float(noise[1])))
    return jobs


# ---------------------------------------------------------------------- labels
def _scores(moves: Sequence[int]) -> list[int | None]:
    oracle = _WORKER.get("oracle")
    if oracle is None:
        oracle = _WORKER["oracle"] = Oracle()
    return oracle.scores_of_moves(moves)


def _label(item: dict[str, Any]) -> dict[str, Any] | None:
    """The item with every column's score, or None when it is decided within a ply or offers no choice."""
    scores = _scores(item["moves"])
    legal = [s for s in scores if s is not None]
    position = Position(geometry())
    for column in item["moves"]:
        position.play(column)
    can_win_now = any(position.copy().play(c) == position.to_move for c in position.legal_moves())
    if can_win_now or len(set(legal)) == 1:
        return None
    return {**item, "scores": scores}


def candidates(games: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every distinct position of the games (mirror images as one) where the game goes on, by phase."""
    seen: set[tuple[int, int]] = set()
    found: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in PHASES}
    for game in games:
        for ply in range(len(game["moves"])):  # the position before move ``ply``: the game goes on
            moves = game["moves"][:ply]
            key = canonical_key(moves)
            if key in seen:
                continue
            seen.add(key)
            found[phase_of(ply)].append({"moves": moves, "ply": ply, "phase": phase_of(ply), "source": game["source"]})
    return found


def draw_labelled(pool: Any, found: dict[str, list[dict[str, Any]]], quotas: dict[str, int], seed: int) -> list:
    rng = np.random.default_rng(seed + 1)
    chosen: list[dict[str, Any]] = []
    for name, _, _ in PHASES:
        items = found[name]
        order = rng.permutation(len(items))
        kept: list[dict[str, Any]] = []
        for start in range(0, len(order), 256):  # label in blocks until the quota is met
            block = [items[i] for i in order[start : start + 256]]
            kept.extend(label for label in pool.map(_label, block, chunksize=8) if label is not None)
            if len(kept) >= quotas[name]:
                break
        print(f"  {name}: {len(items)} candidates, kept {min(len(kept), quotas[name])}", file=sys.stderr)
        chosen.extend(kept[: quotas[name]])
    return sorted(chosen, key=lambda item: (item["ply"], item["moves"]))


# ---------------------------------------------------------------------- openings
def opening_candidates(plies: Iterable[int]) -> dict[int, list[list[int]]]:
    """Every position of each ply count (mirror images as one), as a move list, in a fixed order."""
    found: dict[int, list[list[int]]] = {}
    frontier: list[list[int]] = [[]]
    seen: set[tuple[int, int]] = set()
    wanted = set(plies)
    for ply in range(1, max(wanted) + 1):
        nxt = []
        for moves in frontier:
            for column in range(7):
                line = [*moves, column]
                key = canonical_key(line)
                if key not in seen:
                    seen.add(key)
                    nxt.append(line)
        frontier = nxt
        if ply in wanted:
            found[ply] = list(frontier)
    return found


def _opening_score(moves: list[int]) -> int:
    return max(s for s in _scores(moves) if s is not None)


def draw_openings(pool: Any, margin: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed + 2)
    chosen = []
    for ply, lines in opening_candidates(OPENING_PLIES).items():
        scores = pool.map(_opening_score, lines, chunksize=64)
        balanced = [(line, s) for line, s in zip(lines, scores) if abs(s) <= margin]
        picks = rng.choice(len(balanced), size=min(OPENING_PLIES[ply], len(balanced)), replace=False)
        print(f"  {ply} plies: {len(lines)} positions, {len(balanced)} within {margin}", file=sys.stderr)
        chosen.extend({"moves": balanced[i][0], "ply": ply, "score": int(balanced[i][1])} for i in sorted(picks))
    return chosen


# ---------------------------------------------------------------------- command
def write_jsonl(path: Path, items: Sequence[dict[str, Any]]) -> None:
    write_atomic(path, "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items).encode())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m connectx_gym.data.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--games", type=int, default=900, help="games played for candidate positions")
    parser.add_argument(
        "--quotas", type=int, nargs=3, default=(1000, 1400, 1100), metavar=("OPENING", "MIDDLE", "LATE")
    )
    parser.add_argument("--opening-margin", type=int, default=2)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", choices=("positions", "openings"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    Oracle()  # fail at once without the solver extra
    started = time.perf_counter()
    with mp.get_context("fork").Pool(args.processes) as pool:
        if args.only != "openings":
            games = pool.map(_play_game, game_jobs(args.games, args.seed), chunksize=4)
            print(f"{len(games)} games in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            quotas = dict(zip((name for name, _, _ in PHASES), args.quotas))
            positions = draw_labelled(pool, candidates(games), quotas, args.seed)
            write_jsonl(POSITIONS_FILE, positions)
            print(f"wrote {len(positions)} positions to {POSITIONS_FILE}", file=sys.stderr)
        if args.only != "positions":
            openings = draw_openings(pool, args.opening_margin, args.seed)
            write_jsonl(OPENINGS_FILE, openings)
            print(f"wrote {len(openings)} openings to {OPENINGS_FILE}", file=sys.stderr)
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
