"""Bare env stepping against each kind of opponent, as a training worker steps it: one chunk of
``--envs`` ConnectX envs, seeded random legal agent moves, steps/s side by side in one run.

- ``selfplay``/``checkpoint``: the pretrained model's policy as a self-play snapshot (sampled moves)
  and as a checkpoint opponent (greedy), answering the whole chunk with one forward pass per step
  (batched) or one pass per env (unbatched, the chunk's per-env path);
- ``negamax``/``alphabeta:4``: the compiled (numba) searches and the pure-Python ones.

Batched and unbatched steps must give identical observations, rewards and dones. Prints a table;
the last line is one JSON object with every rate and the ratios ``selfplay_batched_speedup``,
``checkpoint_batched_speedup``, ``negamax_compiled_speedup`` and ``alphabeta_compiled_speedup``.

    python benchmarks/bench_opponents.py [--envs 32] [--steps 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial
from pathlib import Path

import numpy as np

from connectx_gym.agents.checkpoint import CheckpointOpponent
from connectx_gym.agents.selfplay import pool
from connectx_gym.envs.chunk import EnvChunk
from connectx_gym.envs.connectx import ConnectXEnv
from connectx_gym.search.lines import clear_caches

PRETRAINED = Path(__file__).resolve().parent.parent / "models" / "pretrained" / "model.zip"


def steps_per_s(opponent, envs: int, steps: int, batched: bool = True, seed: int = 0) -> tuple[float, list]:
    """Agent steps/s of one chunk (agent and opponent moves and resets included) and a trace of the run."""
    clear_caches()
    chunk = EnvChunk([partial(ConnectXEnv, opponent=opponent, info_board=False) for _ in range(envs)])
    if not batched:
        chunk._batchable = [False] * envs
    _, masks, _ = chunk.reset([seed + i for i in range(envs)], [{}] * envs)
    rng = np.random.default_rng(seed)
    trace = []
    started = time.perf_counter()
    for _ in range(max(1, steps // envs)):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        (obs, rewards, dones, _, masks), _ = chunk.step(actions)
        trace.append((obs.sum(), rewards.sum(), dones.sum()))
    return max(1, steps // envs) * envs / (time.perf_counter() - started), trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=32, help="envs in the chunk (default: the default recipe's 32)")
    parser.add_argument("--steps", type=int, default=3000, help="agent steps per measurement")
    args = parser.parse_args()
    checkpoint = CheckpointOpponent.from_file(PRETRAINED)
    pool().add(0, checkpoint.policy)
    rows, summary = [], {"envs": args.envs, "steps": args.steps}
    for name, opponent in (("selfplay", "selfplay"), ("checkpoint", checkpoint)):
        steps_per_s(opponent, args.envs, args.envs)  # warm up
        batched, trace_b = steps_per_s(opponent, args.envs, args.steps, batched=True)
        single, trace_s = steps_per_s(opponent, args.envs, args.steps, batched=False)
        if trace_b != trace_s:
            raise SystemExit(f"{name}: batched and unbatched opponents played different games")
        rows += [(f"{name} batched", batched), (f"{name} one pass per env", single)]
        summary[f"{name}_batched_steps_per_s"], summary[f"{name}_unbatched_steps_per_s"] = round(batched), round(single)
        summary[f"{name}_batched_speedup"] = round(batched / single, 2)
    for name in ("random", "negamax", "alphabeta:4"):
        os.environ["CONNECTX_PURE_PYTHON"] = "0"
        steps_per_s(name, args.envs, args.envs)  # compile or load the kernels
        fast, trace_f = steps_per_s(name, args.envs, args.steps)
        if name == "random":
            rows.append((name, fast))
            summary["random_steps_per_s"] = round(fast)
            continue
        os.environ["CONNECTX_PURE_PYTHON"] = "1"
        slow, trace_p = steps_per_s(name, args.envs, args.steps)
        os.environ["CONNECTX_PURE_PYTHON"] = "0"
        if trace_f != trace_p:
            raise SystemExit(f"{name}: the compiled and the Python search played different games")
        rows += [(f"{name} compiled", fast), (f"{name} pure Python", slow)]
        key = name.split(":")[0]
        summary[f"{key}_compiled_steps_per_s"], summary[f"{key}_python_steps_per_s"] = round(fast), round(slow)
        summary[f"{key}_compiled_speedup"] = round(fast / slow, 2)
    print(f"one chunk of {args.envs} envs, {args.steps} agent steps each; identical games in every pair")
    print(f"{'opponent':<28} {'steps/s':>9}")
    for name, rate in rows:
        print(f"{name:<28} {rate:>9.0f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
