"""Distillation: a network of any shape fitted to the ``mcts`` teacher's targets over a trained checkpoint.

``python -m connectx_gym.distil`` (and ``benchmarks/capacity_probe.py``) run these steps:

1. :func:`sample_positions`: distinct unfinished positions from games of the teacher checkpoint's
   own sampled policy, each game opening with a few uniformly random moves;
2. :func:`label_positions`: each labelled as the ``mcts`` kickstarting teacher labels it
   (``teacher.search_targets``): the visit distribution and the root value of a PUCT search over
   the checkpoint, on several processes (or, for ``benchmarks/capacity_probe.py --labels solver``,
   :func:`solver_labels`: the perfect solver's best moves and values);
3. :func:`fit_policy`: a fresh network of the config's ``policy`` section fitted to those targets
   with Adam (cross-entropy to the distributions plus squared error to the values);
4. the fitted network saved as a trainer checkpoint (with its metadata), to start a run from with
   ``train.init_from``: a larger network grows from a smaller trained one in minutes, where
   ``kickstart.teacher.network`` teaches it on PPO's rollouts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np

from connectx_gym.agents.mcts import MctsAgent
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.rules.planes import encode_position, legal_mask
from connectx_gym.runtime.processes import single_threaded_blas
from connectx_gym.runtime.worker_pool import WorkerPool
from connectx_gym.search.targets import search_targets

#: positions per labelling task (a progress line after each)
LABEL_CHUNK = 2000
#: positions searched together in one batched search
SEARCH_GROUP = 16
#: positions per task of the perfect solver (:func:`solver_labels`)
SOLVER_CHUNK = 500


def sample_positions(policy, count: int, seed: int, games: int = 256, max_random: int = 4) -> list[Position]:
    """``count`` distinct unfinished positions from games of the policy's sampled moves (``games`` in
    lockstep), each game opening with 0 to ``max_random`` uniformly random moves."""
    rng = np.random.default_rng(seed)
    shape = geometry(**policy.board)
    seen: set[tuple[int, int]] = set()
    out: list[Position] = []

    def fresh() -> tuple[Position, int]:
        return Position(shape), int(rng.integers(0, max_random + 1))

    live = [fresh() for _ in range(games)]
    while len(out) < count:
        planes = np.stack([encode_position(p) for p, _ in live])
        masks = np.stack([legal_mask(shape, p.mask) for p, _ in live])
        logits = np.where(masks, policy.logits(planes), -np.inf)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for i, (position, random_left) in enumerate(live):
            key = (position.mask, position.stones[1])
            if key not in seen and len(out) < count:
                seen.add(key)
                out.append(position.copy())
            if random_left:
                column = int(rng.choice(np.flatnonzero(masks[i])))
            else:
                column = int(rng.choice(len(probs[i]), p=probs[i]))
            position.play(column)
            live[i] = fresh() if position.done else (position, max(random_left - 1, 0))
    return out


def label_chunk(job: tuple[str, int, list[Position]]) -> list[tuple[np.ndarray, float]]:
    """The teacher's targets of some positions: a search of ``simulations`` over the checkpoint, in batches."""
    checkpoint, simulations, positions = job
    with single_threaded_blas():
        agent = MctsAgent(load_checkpoint(checkpoint), simulations=simulations, group=SEARCH_GROUP)
        targets = []
        for start in range(0, len(positions), SEARCH_GROUP):
            batch = positions[start : start + SEARCH_GROUP]
            targets.extend(search_targets(result) for result in agent.search(batch))
    return targets


def label_chunks(
    checkpoint: str, positions: list[Position], simulations: int, processes: int = 2
) -> Iterator[list[tuple[np.ndarray, float]]]:
    """The teacher's targets of ``positions`` in chunks of ``LABEL_CHUNK``, in order, searched on
    ``processes`` processes; closing the generator early (a stop) ends the workers."""
    jobs = [(checkpoint, simulations, positions[i : i + LABEL_CHUNK]) for i in range(0, len(positions), LABEL_CHUNK)]
    yield from _map_jobs(label_chunk, jobs, processes, "labelling worker")


def _map_jobs(function: Callable[[Any], Any], jobs: list, processes: int, name: str) -> Iterator[Any]:
    """``function`` of each job, in order, on ``processes`` worker processes (in this one when 1)."""
    if processes <= 1:
        yield from map(function, jobs)
        return
    # the parent decides when labelling stops: a stop signal to the group leaves the workers alone
    pool = WorkerPool(processes, get_context("forkserver"), name)
    try:
        yield from pool.imap(function, jobs)
    finally:
        pool.close()


def solve_chunk(positions: list[Position]) -> list[tuple[list[int], int]]:
    """The perfect solver's best columns of some positions, and the sign of each one's value for the side
    to move (+1 won, 0 drawn, -1 lost)."""
    from connectx_gym.search.solver import Oracle, best_columns

    oracle = Oracle()
    solved = []
    for position in positions:
        scores = oracle.scores(position)
        solved.append((best_columns(scores), int(np.sign(max(s for s in scores if s is not None)))))
    return solved


def solver_labels(
    positions: list[Position], processes: int = 2, progress: Callable[[int, int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The perfect solver's targets of 6x7 positions (the ``[solver]`` extra), as the arrays
    :func:`label_positions` returns: an even distribution over the best columns ``(N, columns)`` and
    the sign of the value ``(N,)``; solved on ``processes`` processes, ``progress(done, total)`` after
    each chunk of ``SOLVER_CHUNK``."""
    jobs = [positions[i : i + SOLVER_CHUNK] for i in range(0, len(positions), SOLVER_CHUNK)]
    columns = positions[0].geometry.columns if positions else 0
    targets = np.zeros((len(positions), columns), dtype=np.float32)
    values = np.zeros(len(positions), dtype=np.float32)
    done = 0
    for solved in _map_jobs(solve_chunk, jobs, processes, "solver worker"):
        for best, sign in solved:
            targets[done, best] = 1.0 / len(best)
            values[done] = sign
            done += 1
        if progress is not None:
            progress(done, len(positions))
    return targets, values


def label_positions(
    checkpoint: str,
    positions: list[Position],
    simulations: int,
    processes: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's (distributions ``(N, columns)``, values ``(N,)``) of every position
    (:func:`label_chunks`); ``progress(done, total)`` after each chunk."""
    targets: list[tuple[np.ndarray, float]] = []
    for part in label_chunks(checkpoint, positions, simulations, processes):
        targets.extend(part)
        if progress is not None:
            progress(len(targets), len(positions))
    return stack_targets(targets)


def stack_targets(targets: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """``(distribution, value)`` pairs as the arrays ``(N, columns)`` and ``(N,)``."""
    return np.stack([p for p, _ in targets]), np.array([v for _, v in targets], dtype=np.float32)


@dataclass(frozen=True)
class Dataset:
    """Encoded positions and their targets: planes ``(N, 4, rows, columns)``, legal masks, the teacher's
    distributions and values."""

    planes: np.ndarray
    masks: np.ndarray
    targets: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, positions: list[Position], targets: np.ndarray, values: np.ndarray) -> Dataset:
        planes = np.stack([encode_position(p) for p in positions])
        masks = np.stack([legal_mask(p.geometry, p.mask) for p in positions])
        return cls(planes, masks, targets, values)


class PolicyFit:
    """Fitting an SB3 ``MaskableActorCriticPolicy`` to a :class:`Dataset` with Adam, one epoch at a time:
    cross-entropy of its masked move distribution to the targets plus squared error of its value to
    the values. :meth:`state` and :meth:`restore` carry the weights, Adam's moments, the shuffling
    generator and the epoch, so a fit resumed after any epoch ends exactly as an uninterrupted one."""

    def __init__(self, policy: Any, data: Dataset, seed: int, learning_rate: float = 1e-3, batch: int = 256) -> None:
        # deferred: torch takes seconds to import; callers that never fit or load weights do not pay for it
        import torch

        torch.manual_seed(seed)
        self.policy, self.batch, self.epoch = policy, batch, 0
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
        self.rng = np.random.default_rng(seed)
        self.x, self.m = torch.as_tensor(data.planes), torch.as_tensor(data.masks)
        self.p, self.v = torch.as_tensor(data.targets), torch.as_tensor(data.values)

    def run_epoch(self) -> float:
        """One pass over the data in a fresh random order; returns its mean loss."""
        # deferred: torch takes seconds to import; callers that never fit or load weights do not pay for it
        import torch

        x, m, p, v = self.x, self.m, self.p, self.v
        self.policy.set_training_mode(True)
        total, order = 0.0, torch.as_tensor(self.rng.permutation(len(x)))
        for start in range(0, len(x), self.batch):
            idx = order[start : start + self.batch]
            cross_entropy, squared = fit_step(self.policy, self.optimizer, x[idx], m[idx], p[idx], v[idx])
            total += (cross_entropy + squared).item() * len(idx)
        self.policy.set_training_mode(False)
        self.epoch += 1
        return total / len(x)

    def state(self) -> dict[str, Any]:
        """A copy of everything the next epochs depend on (plain tensors, numbers and dicts)."""
        return copy.deepcopy(
            {
                "epoch": self.epoch,
                "policy": self.policy.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.bit_generator.state,
            }
        )

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state`."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.epoch = int(state["epoch"])


def fit_step(policy: Any, optimizer: Any, planes: Any, masks: Any, targets: Any, values: Any) -> tuple[Any, Any]:
    """One Adam step of ``policy`` on a minibatch (torch tensors): cross-entropy of its masked move distribution
    to ``targets`` plus squared error of its value to ``values``; returns the two loss terms (tensors)."""
    # deferred: torch takes seconds to import; callers that never fit or load weights do not pay for it
    import torch

    from connectx_gym.training.policy import masked_forward

    predicted, distribution = masked_forward(policy, planes, masks)
    log_probs = distribution.distribution.logits  # normalised, masked ones ~ -1e8
    cross_entropy = -(targets * log_probs).sum(dim=1).mean()
    squared = torch.nn.functional.mse_loss(predicted.squeeze(1), values)
    optimizer.zero_grad()
    (cross_entropy + squared).backward()
    optimizer.step()
    return cross_entropy, squared


def fit_policy(
    policy: Any,
    data: Dataset,
    epochs: int,
    seed: int,
    learning_rate: float = 1e-3,
    batch: int = 256,
    progress: Callable[[int, float], None] | None = None,
) -> float:
    """Fit ``policy`` to the data for ``epochs`` (:class:`PolicyFit`); ``progress(epoch, loss)`` after
    each epoch; returns the last epoch's mean loss."""
    fit = PolicyFit(policy, data, seed, learning_rate, batch)
    mean_loss = 0.0
    while fit.epoch < epochs:
        mean_loss = fit.run_epoch()
        if progress is not None:
            progress(fit.epoch, mean_loss)
    return mean_loss
