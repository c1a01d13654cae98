"""Training throughput of MaskablePPO under each vec-env mode, side by side in one run.

Modes, all with the default config's PPO and policy settings at its ``parallel_episodes``:

- ``null``: a vec env with the same spaces that does no game logic (the policy-bound ceiling);
- ``chunked_subproc``: the default mode, ``ChunkedVecEnv`` with worker processes;
- ``chunked_inproc``: the same chunks in the main process;
- ``sb3_dummy``: SB3's ``DummyVecEnv``;
- ``sb3_subproc``: SB3's ``SubprocVecEnv``, one env per process;
- ``seed_style``: Kaggle's own ``connectx`` env (``env.train([None, opponent])``) in SB3's
  ``SubprocVecEnv``, the way the original multiprocess trainer ran.

Every mode plays the same opponent (``--opponent``): ``random`` by default, which makes the env
cheap so the table measures the vec env's own overhead; ``--opponent config`` uses the config's
training mixture (the default recipe's negamax), where the env, not the policy, is the bottleneck.

Then an opponent-heavy case: ``alphabeta:4``, chunked workers with 2 processes vs 1 (heavy with the pure-Python
search, ``CONNECTX_PURE_PYTHON=1``; compiled, the learner bounds the speed).
Each mode trains one warm-up rollout, then is timed over ``--rollouts`` rollouts (steps/s include
PPO's updates, as in real training); modes are measured ``--repeats`` times, interleaved, and the
median is reported. Prints a table; the last line is one JSON object.

    python benchmarks/bench_train.py [--opponent random|negamax|config] [--rollouts 2] [--skip-heavy]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import random
import time
from typing import Any

from connectx_gym.runtime.quiet import quiet_import_sb3

import gymnasium as gym
import numpy as np

quiet_import_sb3()
import torch  # noqa: E402
from sb3_contrib import MaskablePPO  # noqa: E402
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecMonitor  # noqa: E402

from connectx_gym.config import load_config  # noqa: E402
from connectx_gym.envs.vec import make_vec_env  # noqa: E402
from connectx_gym.rules.planes import NUM_PLANES  # noqa: E402
from connectx_gym.training.builders import env_kwargs, ppo_kwargs  # noqa: E402
from connectx_gym.training.policy import config_policy_kwargs  # noqa: E402

#: a null episode ends every this many steps, about the length of a real game against random
NULL_EPISODE_LENGTH = 11
#: rollout length per env in the slow modes (CPU-heavy opponent, Kaggle's interpreter)
HEAVY_N_STEPS = 16


class NullVecEnv(VecEnv):
    """Same spaces as ConnectX, no game: constant observations, all moves legal."""

    def __init__(self, num_envs: int, rows: int, columns: int) -> None:
        self._obs = np.zeros((num_envs, NUM_PLANES, rows, columns), dtype=np.float32)
        self._masks = [np.ones(columns, dtype=bool) for _ in range(num_envs)]
        self._steps = np.arange(num_envs) % NULL_EPISODE_LENGTH
        self.render_mode = None
        super().__init__(
            num_envs,
            gym.spaces.Box(0.0, 1.0, (NUM_PLANES, rows, columns), dtype=np.float32),
            gym.spaces.Discrete(columns),
        )

    def reset(self):
        return self._obs.copy()

    def step_async(self, actions):
        pass

    def step_wait(self):
        self._steps += 1
        dones = self._steps % NULL_EPISODE_LENGTH == 0
        infos: list[dict[str, Any]] = [{"terminal_observation": self._obs[0]} if d else {} for d in dones]
        return self._obs.copy(), dones.astype(np.float32), dones, infos

    def close(self):
        pass

    def get_attr(self, attr_name, indices=None):
        if attr_name == "render_mode":
            return [None] * self.num_envs
        raise AttributeError(attr_name)

    def has_attr(self, attr_name):
        return attr_name == "action_masks"

    def set_attr(self, attr_name, value, indices=None):
        pass

    def env_method(self, method_name, *args, indices=None, **kwargs):
        if method_name == "action_masks":
            return self._masks
        raise AttributeError(method_name)

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


class KaggleConnectXEnv(gym.Env):
    """The seed trainer's way: Kaggle's interpreter via ``env.train([None, opponent])``.

    :param opponents: ``{kaggle built-in agent name: weight}``, one drawn per episode
    """

    def __init__(self, rows: int, columns: int, inarow: int, opponents: dict[str, float]) -> None:
        with contextlib.redirect_stderr(io.StringIO()):
            from kaggle_environments import make
        self.rows, self.columns = rows, columns
        self.kaggle_env = make("connectx", configuration={"rows": rows, "columns": columns, "inarow": inarow})
        self.trainers = [self.kaggle_env.train([None, name]) for name in opponents]
        weights = np.array(list(opponents.values()), dtype=float)
        self.probabilities = weights / weights.sum()
        self.trainer = self.trainers[0]
        self.observation_space = gym.spaces.Box(0.0, 1.0, (NUM_PLANES, rows, columns), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(columns)
        self.board = [0] * (rows * columns)
        self.mark = 1

    def _planes(self, observation) -> np.ndarray:
        self.board, self.mark = list(observation["board"]), observation["mark"]
        grid = np.array(self.board).reshape(self.rows, self.columns)
        planes = np.zeros(self.observation_space.shape, dtype=np.float32)
        planes[0] = grid == self.mark
        planes[1] = grid == 3 - self.mark
        return planes

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            random.seed(seed)
        self.trainer = self.trainers[int(self.np_random.choice(len(self.trainers), p=self.probabilities))]
        return self._planes(self.trainer.reset()), {}

    def step(self, action):
        observation, reward, done, info = self.trainer.step(int(action))
        return self._planes(observation), float(reward or 0.0), bool(done), False, {}

    def action_masks(self) -> np.ndarray:
        return np.array([self.board[c] == 0 for c in range(self.columns)])


def short_rollouts(config, n_envs: int):
    """The config with ``HEAVY_N_STEPS``-step rollouts (same PPO work per sample, less waiting)."""
    return dataclasses.replace(
        config, ppo=dataclasses.replace(config.ppo, n_steps=HEAVY_N_STEPS, batch_size=HEAVY_N_STEPS * n_envs)
    )


def measure(name: str, venv: VecEnv, config, rollouts: int) -> float:
    """Steps/s of MaskablePPO with the config's PPO settings on ``venv`` after one warm-up rollout."""
    model = MaskablePPO(
        "MlpPolicy",
        VecMonitor(venv),
        policy_kwargs=config_policy_kwargs(config.policy),
        seed=0,
        device="cpu",
        **ppo_kwargs(config),
    )
    rollout = config.ppo.n_steps * config.multiprocessing.parallel_episodes
    model.learn(rollout)
    start = time.perf_counter()
    model.learn(rollout * rollouts, reset_num_timesteps=False)
    elapsed = time.perf_counter() - start
    venv.close()
    sps = rollout * rollouts / elapsed
    print(f"{name:<18}{sps:>12,.0f} steps/s", flush=True)
    return sps


def main() -> None:
    parser = argparse.ArgumentParser(description="MaskablePPO steps/s per vec-env mode")
    parser.add_argument("--config", default=None, help="config file (default: built-in defaults)")
    parser.add_argument(
        "--opponent",
        default="random",
        help="training opponent for every mode: 'random' (a cheap env: measures the vec env "
        "itself), 'negamax', or 'config' for the config's env.opponent",
    )
    parser.add_argument("--rollouts", type=int, default=2, help="timed rollouts per mode")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per mode (median reported)")
    parser.add_argument("--skip-heavy", action="store_true", help="skip the alphabeta:4 case")
    parser.add_argument("--heavy-only", action="store_true", help="run only the alphabeta:4 case")
    parser.add_argument("--skip-seed-style", action="store_true", help="skip the Kaggle-env SubprocVecEnv mode")
    args = parser.parse_args()

    config = load_config(args.config).resolved()
    mp_config, env = config.multiprocessing, config.env
    n_envs, processes = mp_config.parallel_episodes, mp_config.num_processes
    opponent = config.env.opponent if args.opponent == "config" else args.opponent
    kwargs = env_kwargs(config, opponent=opponent)
    print(
        f"n_envs={n_envs} num_processes={processes} n_steps={config.ppo.n_steps} "
        f"torch_threads={torch.get_num_threads()} opponent={opponent}"
    )
    factories = {
        "null": lambda: NullVecEnv(n_envs, env.rows, env.columns),
        "chunked_subproc": lambda: make_vec_env(kwargs, n_envs, processes, True, "chunked", seed=0),
        "chunked_inproc": lambda: make_vec_env(kwargs, n_envs, processes, False, "chunked", seed=0),
        "sb3_dummy": lambda: make_vec_env(kwargs, n_envs, 1, False, "sb3_dummy", seed=0),
        # fork: the children share the parent's imports instead of each loading torch again
        "sb3_subproc": lambda: make_vec_env(kwargs, n_envs, 1, True, "sb3_subproc", start_method="fork", seed=0),
    }
    if args.heavy_only:
        factories = {}
    samples: dict[str, list[float]] = {name: [] for name in factories}
    # Interleaved repeats, median per mode: the modes differ by a few percent, as much as the
    # machine's own drift over a minute, so one back-to-back pass cannot rank them.
    for _ in range(args.repeats):
        for name, factory in factories.items():
            samples[name].append(measure(name, factory(), config, args.rollouts))
    sps = {name: float(np.median(values)) for name, values in samples.items()}
    if not args.skip_seed_style and not args.heavy_only:
        mixture = dict(opponent) if isinstance(opponent, dict) else {opponent: 1.0}
        unsupported = [name for name in mixture if name not in ("random", "negamax")]
        if unsupported:
            raise SystemExit(f"seed_style runs Kaggle's built-in agents only (random, negamax), not {unsupported}")
        fns = [lambda: KaggleConnectXEnv(env.rows, env.columns, env.inarow, mixture) for _ in range(n_envs)]
        venv = SubprocVecEnv(fns, start_method="fork")
        venv.seed(0)
        # Kaggle's interpreter is slow: shorter rollouts keep this mode to a minute or two
        sps["seed_style"] = measure("seed_style", venv, short_rollouts(config, n_envs), 1)

    result: dict[str, Any] = {"opponent": opponent, "n_envs": n_envs, "num_processes": processes}
    if sps:
        result.update(
            {
                "sps": {k: round(v, 1) for k, v in sps.items()},
                "samples": {k: [round(v, 1) for v in values] for k, values in samples.items()},
                "fraction_of_bound": round(sps["chunked_subproc"] / sps["null"], 3),
                "chunked_vs_dummy": round(sps["chunked_subproc"] / sps["sb3_dummy"], 3),
                "chunked_vs_sb3_subproc": round(sps["chunked_subproc"] / sps["sb3_subproc"], 3),
            }
        )
    if "seed_style" in sps:
        result["speedup_vs_seed_style"] = round(sps["chunked_subproc"] / sps["seed_style"], 1)

    if not args.skip_heavy:
        heavy = dict(kwargs, opponent="alphabeta:4")
        short = short_rollouts(config, n_envs)  # the search dominates either way
        ones, twos = [], []
        for _ in range(args.repeats):  # interleaved: one short sample swings with the games' positions
            ones.append(
                measure(
                    "alphabeta4_1proc", make_vec_env(heavy, n_envs, 1, True, "chunked", seed=0), short, args.rollouts
                )
            )
            twos.append(
                measure(
                    "alphabeta4_2proc", make_vec_env(heavy, n_envs, 2, True, "chunked", seed=0), short, args.rollouts
                )
            )
        one, two = float(np.median(ones)), float(np.median(twos))
        result["heavy"] = {
            "opponent": "alphabeta:4",
            "sps_1_process": round(one, 1),
            "sps_2_processes": round(two, 1),
            "speedup_2_vs_1": round(two / one, 3),
            "samples_1": [round(v, 1) for v in ones],
            "samples_2": [round(v, 1) for v in twos],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
