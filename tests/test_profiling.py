"""The opt-in worker timers behind benchmarks/bench_profile.py: off by default, and with
CONNECTX_PROFILE=1 each worker reports its opponents' time by kind, its stepping, sending and waiting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from connectx_gym.envs import profiling
from connectx_gym.envs.vec import make_vec_env

SCRIPT = """
import json
import numpy as np
from connectx_gym.envs.vec import make_vec_env
venv = make_vec_env({"opponent": {"negamax": 0.5, "alphabeta:2": 0.5}}, parallel_episodes=4, num_processes=2,
                    use_multiprocessing=True, seed=0)
venv.reset()
for _ in range(40):
    masks = venv.action_masks()
    venv.step(np.array([np.flatnonzero(m)[0] for m in masks]))
print(json.dumps(venv.worker_profiles()))
venv.close()
"""


def test_profiling_is_off_by_default():
    assert "CONNECTX_PROFILE" not in os.environ and profiling.TIMERS is None
    venv = make_vec_env({"opponent": "random"}, parallel_episodes=2, num_processes=1, use_multiprocessing=False, seed=0)
    venv.reset()
    venv.step(np.zeros(2, dtype=np.int64))
    assert venv.worker_profiles()[0]["timers"] == {}
    venv.close()


def test_workers_time_their_opponents_by_kind_and_their_waiting():
    env = dict(os.environ, CONNECTX_PROFILE="1")
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    profiles = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(profiles) == 2 and len({p["pid"] for p in profiles}) == 2
    for profile in profiles:
        timers = profile["timers"]
        assert {"step", "wait", "send"} <= set(timers) and timers["step"] > 0
        assert {"opponent:negamax", "opponent:alphabeta:2"} & set(timers)
        assert sum(v for k, v in timers.items() if k.startswith("opponent:")) <= timers["step"]
        assert profile["cpu_s"] > 0
