"""Env stepping speed: ConnectXEnv vs Kaggle's ``env.train([None, "random"])``, and opponents' move speed.

Both envs are driven by the same random agent (a legal column picked from the Kaggle-format board
each returns), so the ratio measures the environments alone. Opponent speed is measured with cold
search caches on the same set of mid-game positions for our bitboard negamax, Kaggle's own negamax agent, and
``alphabeta:4``. Prints a table, then one JSON object as the last line.

    python benchmarks/bench_env.py [--seconds 3] [--rows 6 --columns 7 --inarow 4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import time

import numpy as np

from connectx_gym.agents.specs import make_opponent
from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.search.lines import clear_caches


def legal_from_board(board, columns):
    return [c for c in range(columns) if board[c] == 0]


def ours_steps_per_s(rows, columns, inarow, seconds):
    env = ConnectXEnv(rows=rows, columns=columns, inarow=inarow, opponent="random")
    picker = random.Random(0)
    _, info = env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(500):
            action = picker.choice(legal_from_board(info["board"], columns))
            _, _, terminated, _, info = env.step(action)
            steps += 1
            if terminated:
                _, info = env.reset()
        if time.perf_counter() >= deadline:
            break
    return steps / (time.perf_counter() - start)


def kaggle_steps_per_s(rows, columns, inarow, seconds):
    with contextlib.redirect_stderr(io.StringIO()):
        from kaggle_environments import make
    env = make("connectx", configuration={"rows": rows, "columns": columns, "inarow": inarow}, debug=False)
    trainer = env.train([None, "random"])
    picker = random.Random(0)
    random.seed(0)
    observation = trainer.reset()
    steps, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        action = picker.choice(legal_from_board(observation["board"], columns))
        observation, _, done, _ = trainer.step(action)
        steps += 1
        if done:
            observation = trainer.reset()
    return steps / (time.perf_counter() - start)


def sample_positions(rows, columns, inarow, count, seed=0):
    """Non-terminal positions after 4..14 random plies."""
    rng = random.Random(seed)
    g = geometry(rows, columns, inarow)
    positions = []
    while len(positions) < count:
        position = Position(g)
        for _ in range(rng.randint(4, min(14, g.size - 2))):
            position.play(rng.choice(position.legal_moves()))
            if position.done:
                break
        if not position.done:
            positions.append(position)
    return positions


def opponent_moves_per_s(spec, positions, seconds):
    """Moves/s on ``positions`` with the search caches cleared before every move (a cold start)."""
    opponent = make_opponent(spec)
    rng = np.random.default_rng(0)
    moves, start = 0, time.perf_counter()
    while True:
        for position in positions:
            clear_caches()
            opponent.act(position.copy(), rng)
            moves += 1
        if time.perf_counter() - start >= seconds:
            break
    return moves / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--columns", type=int, default=7)
    parser.add_argument("--inarow", type=int, default=4)
    args = parser.parse_args()
    size = (args.rows, args.columns, args.inarow)

    ours = ours_steps_per_s(*size, args.seconds)
    kaggle = kaggle_steps_per_s(*size, args.seconds)
    positions = sample_positions(*size, count=40)
    speeds = {
        "negamax_moves_per_s": opponent_moves_per_s("negamax", positions, args.seconds),
        "kaggle_negamax_moves_per_s": opponent_moves_per_s("kaggle:negamax", positions[:10], args.seconds),
        "alphabeta4_moves_per_s": opponent_moves_per_s("alphabeta:4", positions, args.seconds),
    }
    result = {
        "board": "x".join(map(str, size)),
        "ours_steps_per_s": round(ours, 1),
        "kaggle_steps_per_s": round(kaggle, 1),
        "ratio": round(ours / kaggle, 1),
        **{key: round(value, 1) for key, value in speeds.items()},
        "negamax_speedup_vs_kaggle": round(speeds["negamax_moves_per_s"] / speeds["kaggle_negamax_moves_per_s"], 1),
    }
    print(f"{'measurement':<34}{'per second':>14}")
    print(f"{'ConnectXEnv steps (vs random)':<34}{ours:>14,.0f}")
    print(f"{'Kaggle env.train steps (vs random)':<34}{kaggle:>14,.0f}")
    print(f"{'ratio':<34}{ours / kaggle:>14,.1f}")
    print(f"{'negamax moves (ours)':<34}{speeds['negamax_moves_per_s']:>14,.1f}")
    print(f"{'negamax moves (Kaggle agent)':<34}{speeds['kaggle_negamax_moves_per_s']:>14,.1f}")
    print(f"{'alphabeta:4 moves (ours)':<34}{speeds['alphabeta4_moves_per_s']:>14,.1f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
