"""AlphaZero's loop (``train.algorithm: alphazero``): generations of self-play with search for both seats,
a replay window, supervised fitting, then the next generation with the new weights.

Each generation:

1. **Self-play.** The network's weights go to the self-play workers (``multiprocessing.num_processes``
   processes, numpy only, one BLAS thread each; with ``multiprocessing.backend: ray``, Ray tasks on
   the cluster of the ``ray`` section) as numpy arrays. ``alphazero.games`` games are split
   into chunks of ``alphazero.parallel_games``; a worker plays a chunk's games at once, every move a
   PUCT search whose leaves from all its games share one forward pass per round
   (:mod:`connectx_gym.training.az_selfplay`). A chunk is a function of the weights, the settings and
   its seed ``(train.seed, generation, chunk)``, so a resumed generation plays the same games.
2. **Targets.** The visit distributions (exact where the tree proves the position), and the value
   target of ``alphazero.value_target``.
3. **Fitting.** The replay window (the last ``alphazero.window`` generations, this one included),
   mirrored and with repeated positions merged (:mod:`connectx_gym.training.replay_window`), is
   fitted for ``alphazero.epochs`` passes: cross-entropy to the policy targets plus squared error to
   the value targets, with the policy's own Adam optimizer (saved in every checkpoint).

The self-play workers use both cores while the learner waits; the learner fits (torch on every core)
while the workers wait: the two alternate, so no core idles. Each generation logs where its time
went (``alphazero/selfplay_seconds``, ``fit_seconds``, ``callback_seconds``) and prints one line.

The budget is ``train.total_timesteps`` self-play positions; a generation is always finished, so a
run may end past it by less than one generation. Steps are positions: ``train.checkpoint_every`` and
``train.eval_every`` count them, and the shared callbacks (progress bar with its ETA, checkpoints,
evaluation with accuracy and value sign) run after every chunk.

**Stopping and resuming.** What a run carries besides the model (the window, the generation, the
chunks of it played so far) is :class:`AlphaZeroState`, saved atomically (``alphazero_state.npz``)
right before every checkpoint. A stop during the fitting puts back the weights and optimizer of the
generation's start before the checkpoint is saved, so ``--resume`` fits that generation again; a
resumed run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import copy
import sys
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from connectx_gym.errors import UserError, WorkerError
from connectx_gym.inference.numpy_policy import NumpyPolicy, from_sb3_model
from connectx_gym.runtime.processes import single_threaded_blas
from connectx_gym.runtime.ray_cluster import connect
from connectx_gym.runtime.worker_pool import WorkerPool
from connectx_gym.training.az_selfplay import FIELDS, STATS, Samples, SelfPlaySettings, play_games, value_targets
from connectx_gym.training.distillation import fit_step
from connectx_gym.training.progress import ProgressBarCallback
from connectx_gym.training.replay_window import ReplayWindow, write_npz

#: the state file in the run directory, written right before every checkpoint
STATE_NAME = "alphazero_state.npz"


def settings_of(section: Any) -> SelfPlaySettings:
    """The self-play settings of an ``alphazero`` config section."""
    return SelfPlaySettings(
        simulations=section.simulations,
        c_puct=section.c_puct,
        batch=section.leaf_batch,
        fpu_reduction=section.fpu_reduction,
        noise_alpha=section.noise_alpha,
        noise_fraction=section.noise_fraction,
        temperature_moves=section.temperature_moves,
        policy_target=section.policy_target,
        considered=section.considered,
        length_weight=section.length_weight,
    )


def play_chunk(job: tuple[bytes, tuple[int, int, int], int, SelfPlaySettings, tuple[int, ...], int]) -> Samples:
    """One chunk of self-play games in a worker: ``(network bytes, board, games, settings, seed, parallel)``."""
    payload, board, games, settings, seed, parallel = job
    with single_threaded_blas():
        network = NumpyPolicy.from_bytes(payload)
        return play_games(network.policy_value, board, games, settings, list(seed), parallel)


def play_chunk_ray(payload: bytes, job: tuple) -> Samples:
    """:func:`play_chunk` as a Ray task: the network comes from the object store, once per generation."""
    return play_chunk((payload, *job))


class SelfPlayPool:
    """The self-play workers: ``processes`` worker processes (forkserver, one BLAS thread each, ignoring the
    stop signals: the parent decides when they stop), this process when ``processes`` is 1, or, with
    ``ray`` (the connected ``ray`` module, ``multiprocessing.backend: ray``), one Ray task per chunk
    reserving ``ray_cpus`` CPUs, on whatever cluster Ray was joined to.
    """

    def __init__(self, processes: int, ray: Any = None, ray_cpus: float = 1.0) -> None:
        self.pool = None
        self.ray = ray
        self.task = None
        if ray is not None:
            self.task = ray.remote(num_cpus=ray_cpus)(play_chunk_ray)  # here, not at import: Ray is optional
        elif processes > 1:
            self.pool = WorkerPool(processes, get_context("forkserver"), "self-play worker")

    def map(self, jobs: list) -> Any:
        """The chunks' samples, in order, as they finish."""
        if self.ray is not None:
            return self._ray_map(jobs)
        if self.pool is None:
            return map(play_chunk, jobs)
        return self.pool.imap(play_chunk, jobs)

    def _ray_map(self, jobs: list) -> Any:
        ray = self.ray
        if not jobs:
            return
        payload = ray.put(jobs[0][0])  # every chunk of a generation searches the same network
        pending = [self.task.remote(payload, job[1:]) for job in jobs]
        try:
            for ref in list(pending):
                try:
                    samples = ray.get(ref)
                except ray.exceptions.RayError as error:
                    raise WorkerError(f"a Ray self-play task failed: {str(error).strip().splitlines()[0]}") from None
                pending.remove(ref)
                yield samples
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


class AlphaZeroState:
    """What an AlphaZero run carries across a restart besides the model: the replay window, the generation
    and the chunks of it played so far (their samples), and the step they were saved at; restored from
    ``run_dir`` when resuming, as :class:`~connectx_gym.training.run_state.RunState` is for PPO.

    :param resume: the ``(step, checkpoint)`` being resumed from, or None for a fresh run
    :raises UserError: resuming without the state file, or with one saved with another checkpoint
    """

    FILE = STATE_NAME

    def __init__(self, config: Any, run_dir: Path, resume: tuple[int, Path] | None) -> None:
        self.run_dir = run_dir
        self.window = ReplayWindow(config.alphazero.window)
        self.generation = 0
        #: samples of the current generation's chunks played so far, in chunk order
        self.pending: list[Samples] = []
        if resume:
            self.restore(resume[0])

    def save(self, step: int | None = None) -> None:
        """Write the state atomically, before the checkpoint of ``step``."""
        arrays: dict[str, np.ndarray] = {
            "step": np.array(-1 if step is None else step),
            "generation": np.array(self.generation),
            "chunks": np.array(len(self.pending)),
            **self.window.to_arrays("window_"),
        }
        for i, part in enumerate(self.pending):
            for name in FIELDS:
                arrays[f"pending_{name}_{i}"] = getattr(part, name)
            arrays[f"pending_stats_{i}"] = np.array([part.stats.get(key, 0) for key in STATS])
        write_npz(self.run_dir / self.FILE, arrays)

    def restore(self, step: int) -> None:
        """Load the state saved with the checkpoint of ``step``.

        :raises UserError: no state file, or one saved with another checkpoint
        """
        path = self.run_dir / self.FILE
        if not path.is_file():
            raise UserError(f"--resume: {path} is missing: an AlphaZero run keeps its replay window there")
        with np.load(path, allow_pickle=False) as data:
            saved = int(data["step"])
            if saved != step:
                raise UserError(
                    f"--resume: {path} was saved with the checkpoint of step {saved}, not step {step}; "
                    "resume from that checkpoint"
                )
            self.generation = int(data["generation"])
            self.window = ReplayWindow.from_arrays(data, "window_")
            self.pending = []
            for i in range(int(data["chunks"])):
                part = Samples(*(data[f"pending_{name}_{i}"] for name in FIELDS))
                part.stats = dict(zip(STATS, data[f"pending_stats_{i}"].tolist()))
                self.pending.append(part)


class AlphaZeroTrainer:
    """AlphaZero's loop over a ``MaskablePPO``'s policy network (the model is the network's container: its
    checkpoints are the PPO trainer's, with their metadata).

    :param model: the model (new or loaded); its policy is fitted in place
    :param config: the whole config (``alphazero``, ``train``, ``multiprocessing`` and ``env`` sections)
    :param state: the run's :class:`AlphaZeroState`
    """

    def __init__(self, model: Any, config: Any, state: AlphaZeroState) -> None:
        self.model = model
        self.config = config
        self.section = config.alphazero
        self.state = state
        env = config.env
        self.board = (env.rows, env.columns, env.inarow)
        self.settings = settings_of(self.section)
        self.say = lambda text: print(text, file=sys.stderr)
        self.started = time.perf_counter()

    # ------------------------------------------------------------------ the loop
    def learn(self, total_timesteps: int, callback: Any) -> Any:
        """Run generations until the model has ``total_timesteps`` more steps (positions), finishing a generation
        begun before a stop whatever the budget; ``callback`` is an SB3 ``CallbackList``, told after every chunk."""
        model = self.model
        if total_timesteps <= 0 and not self.state.pending:
            return model
        self.started = time.perf_counter()
        target = model.num_timesteps + total_timesteps
        callback.init_callback(model)
        callback.on_training_start(locals(), globals())
        for item in callback.callbacks:
            if isinstance(item, ProgressBarCallback):  # the generation's line must not break the bar
                self.say = item.write
        mp = self.config.multiprocessing
        processes = mp.num_processes if mp.use_multiprocessing else 1
        ray = None
        if mp.backend == "ray":
            ray = connect(self.config.ray.address, what="the ray backend")
        pool = SelfPlayPool(int(processes), ray, self.config.ray.num_cpus_per_worker)
        try:
            while model.num_timesteps < target or self.state.pending:
                if not self._generation(callback, pool):
                    break
        finally:
            pool.close()
        callback.on_training_end()
        return model

    def _generation(self, callback: Any, pool: SelfPlayPool) -> bool:
        """One generation: the chunks not yet played, then the fit; False when a callback stops training."""
        model, state, section = self.model, self.state, self.section
        chunk_sizes = [
            min(section.parallel_games, section.games - start)
            for start in range(0, section.games, section.parallel_games)
        ]
        payload = from_sb3_model(model).to_bytes()
        seed = int(self.config.train.seed)
        jobs = [
            (payload, self.board, games, self.settings, (seed, state.generation, index), section.parallel_games)
            for index, games in enumerate(chunk_sizes)
        ][len(state.pending) :]
        carried = len(state.pending)  # chunks a stopped session played: their games count, not their time
        started = time.perf_counter()
        callback_seconds = 0.0
        for samples in pool.map(jobs):
            state.pending.append(samples)
            model.num_timesteps += len(samples)
            tick = time.perf_counter()
            callback.update_locals({"samples": samples})
            keep_going = callback.on_step()
            callback_seconds += time.perf_counter() - tick
            if not keep_going:
                return False
        selfplay_seconds = time.perf_counter() - started - callback_seconds
        fresh_evaluations = sum(part.stats.get("evaluations", 0) for part in state.pending[carried:])
        played = Samples.join(state.pending)
        tick = time.perf_counter()
        window = state.window.copy()
        window.generations = section.window_at(state.generation)
        window.add(played.stones, played.policy, value_targets(played, section.value_target))
        data = window.training_set(mirror=section.mirror)
        losses = self._fit(data, state.generation)
        fit_seconds = time.perf_counter() - tick
        state.window, state.pending = window, []
        state.generation += 1
        self._log(played, data, losses, selfplay_seconds, fit_seconds, callback_seconds, fresh_evaluations, carried)
        return True

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: Any, generation: int) -> tuple[float, float]:
        """Fit the policy to ``data`` for ``alphazero.epochs`` passes; returns the last pass's mean policy and
        value losses. A stop while fitting puts the weights and the optimizer back as they were."""
        policy, section = self.model.policy, self.section
        optimizer = policy.optimizer
        rate = section.learning_rate_at(self.model.num_timesteps / self.config.train.total_timesteps)
        for group in optimizer.param_groups:
            group["lr"] = rate
        saved = copy.deepcopy((policy.state_dict(), optimizer.state_dict()))
        device = self.model.device
        planes = torch.as_tensor(data.planes, device=device)
        masks = torch.as_tensor(data.masks, device=device)
        targets = torch.as_tensor(data.targets, device=device)
        values = torch.as_tensor(data.values, device=device)
        rng = np.random.default_rng([int(self.config.train.seed), generation])
        policy_loss = value_loss = 0.0
        try:
            policy.set_training_mode(True)
            for _ in range(section.epochs):
                order = torch.as_tensor(rng.permutation(len(planes)), device=device)
                policy_total = value_total = 0.0
                for start in range(0, len(planes), section.batch_size):
                    idx = order[start : start + section.batch_size]
                    cross_entropy, squared = fit_step(
                        policy, optimizer, planes[idx], masks[idx], targets[idx], values[idx]
                    )
                    policy_total += cross_entropy.item() * len(idx)
                    value_total += squared.item() * len(idx)
                policy_loss, value_loss = policy_total / len(planes), value_total / len(planes)
        except BaseException:
            policy.load_state_dict(saved[0])
            optimizer.load_state_dict(saved[1])
            raise
        finally:
            policy.set_training_mode(False)
        return policy_loss, value_loss

    # ------------------------------------------------------------------ logging
    def _log(
        self,
        played: Samples,
        data: Any,
        losses: tuple[float, float],
        selfplay: float,
        fit: float,
        callbacks: float,
        fresh_evaluations: float,
        carried: int,
    ) -> None:
        """The generation's log row and line. ``selfplay`` seconds are this session's, and
        ``fresh_evaluations`` the leaf evaluations of the chunks played in them; ``carried`` chunks were
        played by a stopped session (their games count, their time was that session's)."""
        stats = played.stats
        seconds_in_workers = max(float(stats.get("seconds", 0.0)), 1e-9)
        record = self.model.logger.record
        evaluations_per_second = fresh_evaluations / max(selfplay, 1e-9) if fresh_evaluations else 0.0
        values = {
            "generation": self.state.generation,
            "games": int(stats.get("games", 0)),
            "positions": len(played),
            "proven_share": float(played.proven.mean()) if len(played) else 0.0,
            "window_positions": len(data.planes),
            "duplicate_share": data.duplicate_share,
            "policy_loss": losses[0],
            "value_loss": losses[1],
            "selfplay_seconds": selfplay,
            "fit_seconds": fit,
            "callback_seconds": callbacks,
            "evaluations_per_second": evaluations_per_second,
            "worker_evaluations_per_second": stats.get("evaluations", 0) / seconds_in_workers,
        }
        for name, value in values.items():
            record(f"alphazero/{name}", value)
        record("time/total_timesteps", self.model.num_timesteps)
        # as SB3 logs it: seconds since this session's training started (recipe_curves.py reads it)
        record("time/time_elapsed", int(time.perf_counter() - self.started))
        self.model.logger.dump(self.model.num_timesteps)
        before = f"; {carried} chunk{'s' if carried > 1 else ''} played before the stop" if carried else ""
        self.say(
            f"generation {self.state.generation}: {values['games']} games, {values['positions']:,} positions "
            f"({values['proven_share']:.0%} proven) | self-play {selfplay:.0f} s ({evaluations_per_second:,.0f} "
            f"leaf evaluations/s{before}), fit {fit:.0f} s on {values['window_positions']:,} positions "
            f"({data.duplicate_share:.0%} repeats merged), callbacks {callbacks:.0f} s | loss "
            f"{losses[0]:.3f} + {losses[1]:.3f}"
        )
