"""``python -m connectx_gym.evaluate``: how strong is an agent, with honest error bars.

Three modes, one agent spec syntax (``opponents`` plus ``agents``: ``random``, ``negamax``,
``alphabeta:4``, ``kaggle:<name|file.py>``, ``checkpoint:<model.zip>``, bare ``*.zip``/``*.py``):

* **match**: ``evaluate A --opponents B C --games N`` plays N games of A against each opponent,
  half in each seat, and reports W/D/L, the win rate with a 95% Wilson score interval, and per seat;
* **tournament**: ``evaluate --tournament A B C`` plays every pair and fits Bradley-Terry (Elo)
  ratings by maximum likelihood, with 95% intervals from the inverse Fisher information;
* **run**: ``evaluate models/<run> --opponents ...`` evaluates every checkpoint of a training run,
  and ``--plot out.png`` draws win rate vs training step with interval bands.

Game ``i`` of a pairing uses ``np.random.default_rng(seed + i)`` (shared by both sides; see
``match.play_opponent_game``) and the agent is first in the first ``ceil(N / 2)`` games, so results
depend only on the seed: the games are split into contiguous batches that ``--num-processes``
processes play (this one and forkserver workers that import numpy but never torch), and any
process count gives the same records. With ``--backend ray`` the same batches are Ray tasks
(one CPU each) on a local Ray instance or, with ``--ray-address auto|host:port``, on a cluster,
which gives the same records again. ``--replay out.html`` writes one game as Kaggle's HTML player; ``--json``/``--csv`` save
the results. Bad input is one ``error: ...`` line on stderr and exit code 2; a worker or Ray task
that fails is one ``error: ...`` line and exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import multiprocessing as mp
import os
import pickle
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from connectx_gym.game.agents import BARE_PATH_NOTE, agent_board, board_text, make_agent, parse_agent_spec
from connectx_gym.runtime.processes import openblas_apis, single_threaded_blas, single_threaded_children, usable_cpu_count
from connectx_gym.cli import ArgumentParser
from connectx_gym.errors import UserError, WorkerError
from connectx_gym.evaluation.match import GameRecord, SeatRecord, init_batch_worker, init_batch_worker_process, play_batch
from connectx_gym.runtime.ray_cluster import cluster_cpus, connect, import_ray

#: two-sided 95% normal quantile
Z95 = 1.959963984540054
ELO_PER_NATURAL_UNIT = 400.0 / math.log(10.0)
DEFAULT_BOARD = {"rows": 6, "columns": 7, "inarow": 4}
DEFAULT_OPPONENTS = ("random", "negamax")
#: modules a worker process preloads (forkserver): quiet gym banner, the env, agents and game loops
WORKER_PRELOAD = ["connectx_gym.runtime.quiet", "connectx_gym.envs.connectx", "connectx_gym.game.agents", "connectx_gym.evaluation.match"]
#: batches per process: small enough to balance games of uneven length, each still many games
BATCHES_PER_PROCESS = 32
#: spec kinds that only make sense inside a training run
TRAINING_ONLY_KINDS = ("selfplay",)
#: distinct forfeit messages kept per pairing
MAX_ERRORS_KEPT = 5
#: where games are played: processes on this machine, or tasks on a Ray cluster
BACKENDS = ("local", "ray")
#: resources of one Ray task: it plays one batch of games on one thread
RAY_TASK_OPTIONS: Dict[str, Any] = {"num_cpus": 1}


# ====================================================================== statistics
def wilson_interval(successes: float, trials: int, z: float = Z95) -> Tuple[float, float]:
    """Wilson score interval for a binomial proportion (``(nan, nan)`` for no trials).

    :param successes: successes (may be fractional, e.g. wins + draws / 2)
    :param trials: trials
    :param z: normal quantile (1.96 for 95%)
    """
    if trials <= 0:
        return (math.nan, math.nan)
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(max(p * (1 - p) / trials + z2 / (4 * trials * trials), 0.0))
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Ratings:
    """Bradley-Terry ratings on the Elo scale (mean 0), with 95% intervals."""

    elo: np.ndarray
    low: np.ndarray
    high: np.ndarray
    stderr: np.ndarray
    iterations: int


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def bradley_terry(
    scores: np.ndarray, games: np.ndarray, prior_draws: float = 1.0, tol: float = 1e-10, max_iter: int = 200
) -> Ratings:
    """Maximum-likelihood Bradley-Terry ratings, by Newton's method on the concave log-likelihood.

    Player ``i`` beats ``j`` with probability ``1 / (1 + exp(theta_j - theta_i))``; a draw counts as
    half a win for each side. ``prior_draws`` virtual draws of every player against a fixed player
    of strength 0 (a weak prior) keep the ratings finite when someone wins or loses every game;
    ``0`` gives the plain maximum-likelihood estimate, which exists only when every player has
    scored against some player of every group it trails. Ratings are reported on the Elo scale
    (``400 / ln 10`` per unit) and anchored so their mean is 0; the intervals are
    ``1.96`` standard errors from the inverse observed Fisher information of the anchored ratings.

    :param scores: ``scores[i, j]`` = points of ``i`` against ``j`` (wins + draws / 2)
    :param games: ``games[i, j]`` = games between ``i`` and ``j`` (symmetric, zero diagonal)
    :raises ValueError: if the plain MLE (``prior_draws=0``) does not exist
    """
    scores = np.asarray(scores, dtype=float)
    games = np.asarray(games, dtype=float)
    n = len(scores)
    if scores.shape != (n, n) or games.shape != (n, n):
        raise ValueError("scores and games must be square matrices of the same size")
    if not np.allclose(games, games.T) or not np.allclose(scores + scores.T, games):
        raise ValueError("games must be symmetric and scores[i, j] + scores[j, i] must equal games[i, j]")
    if prior_draws < 0:
        raise ValueError(f"prior_draws must be >= 0, got {prior_draws}")
    if prior_draws == 0:
        _check_mle_exists(scores, games)
    totals = scores.sum(axis=1) + prior_draws / 2.0

    def log_likelihood(theta: np.ndarray) -> float:
        diff = theta[:, None] - theta[None, :]
        value = float(np.sum(scores * _log_sigmoid(diff)))
        return value + prior_draws / 2.0 * float(np.sum(_log_sigmoid(theta) + _log_sigmoid(-theta)))

    def gradient_and_information(theta: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
        own = 1.0 / (1.0 + np.exp(-theta))
        gradient = totals - np.sum(games * p, axis=1) - prior_draws * own
        weights = games * p * p.T
        information = np.diag(weights.sum(axis=1) + prior_draws * own * (1.0 - own)) - weights
        return gradient, information

    theta = np.zeros(n)
    ones = np.ones((n, n)) / n
    iterations = 0
    current = log_likelihood(theta)
    for iterations in range(1, max_iter + 1):
        gradient, information = gradient_and_information(theta)
        # without a prior the likelihood is flat along theta + c: keep the mean fixed
        system = information + ones if prior_draws == 0 else information
        step = np.linalg.solve(system, gradient)
        scale = 1.0
        while True:
            candidate = theta + scale * step
            value = log_likelihood(candidate)
            if value >= current - 1e-12 or scale < 1e-8:
                break
            scale /= 2.0
        theta, previous, current = candidate, current, value
        if np.max(np.abs(scale * step)) < tol or abs(current - previous) < tol * 1e-3:
            break
    _, information = gradient_and_information(theta)
    centring = np.eye(n) - ones
    covariance = np.linalg.pinv(information) if prior_draws == 0 else np.linalg.inv(information)
    covariance = centring @ covariance @ centring.T
    anchored = (theta - theta.mean()) * ELO_PER_NATURAL_UNIT
    stderr = np.sqrt(np.clip(np.diag(covariance), 0.0, None)) * ELO_PER_NATURAL_UNIT
    return Ratings(elo=anchored, low=anchored - Z95 * stderr, high=anchored + Z95 * stderr, stderr=stderr, iterations=iterations)


def _check_mle_exists(scores: np.ndarray, games: np.ndarray) -> None:
    """The plain MLE exists iff the 'scored against' graph is strongly connected (Zermelo/Ford)."""
    n = len(scores)
    scored = scores > 0

    def reachable(adjacency: np.ndarray) -> np.ndarray:
        seen = np.zeros(n, dtype=bool)
        seen[0] = True
        frontier = [0]
        while frontier:
            node = frontier.pop()
            for other in np.nonzero(adjacency[node] & ~seen)[0]:
                seen[other] = True
                frontier.append(int(other))
        return seen

    if n > 1 and not (reachable(scored).all() and reachable(scored.T).all()):
        raise ValueError(
            "maximum-likelihood ratings do not exist: some agents won (or lost) every game against the rest; "
            "use a prior (prior_draws > 0)"
        )


# ====================================================================== results
@dataclass
class PairingResult:
    """All games of ``agent`` against ``opponent``, from the agent's side."""

    agent: str
    opponent: str
    agent_index: int
    opponent_index: int
    records: List[GameRecord] = field(default_factory=list)
    step: Optional[int] = None

    @property
    def seats(self) -> Dict[str, SeatRecord]:
        seats = {"first": SeatRecord(), "second": SeatRecord()}
        for record in self.records:
            seats[record.seat].add(record.outcome)
        return seats

    @property
    def total(self) -> SeatRecord:
        total = SeatRecord()
        for record in self.records:
            total.add(record.outcome)
        return total

    @property
    def games(self) -> int:
        return len(self.records)

    @property
    def win_rate(self) -> float:
        total = self.total
        return total.wins / total.games if total.games else math.nan

    @property
    def win_rate_ci(self) -> Tuple[float, float]:
        total = self.total
        return wilson_interval(total.wins, total.games)

    @property
    def score(self) -> float:
        total = self.total
        return (total.wins + 0.5 * total.draws) / total.games if total.games else math.nan

    def forfeits(self, side: str) -> int:
        return sum(1 for record in self.records if record.forfeit == side)

    def errors(self) -> List[str]:
        """Distinct forfeit messages (at most ``MAX_ERRORS_KEPT``), naming the side and its first game."""
        first_game: Dict[Tuple[str, str], int] = {}
        for record in self.records:
            if record.forfeit and record.error:
                first_game.setdefault((record.forfeit, record.error), record.index)
        return [
            f"{self.agent if side == 'agent' else self.opponent} forfeited (first in game {index}): {error}"
            for (side, error), index in list(first_game.items())[:MAX_ERRORS_KEPT]
        ]

    def to_dict(self) -> Dict[str, Any]:
        total, seats = self.total, self.seats
        low, high = self.win_rate_ci
        out: Dict[str, Any] = {"agent": self.agent, "opponent": self.opponent}
        if self.step is not None:
            out["step"] = self.step
        out.update(
            games=total.games, wins=total.wins, draws=total.draws, losses=total.losses,
            win_rate=_finite(self.win_rate), win_rate_ci95=[_finite(low), _finite(high)], score=_finite(self.score),
            seats={
                seat: {"games": r.games, "wins": r.wins, "draws": r.draws, "losses": r.losses}
                for seat, r in seats.items()
            },
            forfeits={"agent": self.forfeits("agent"), "opponent": self.forfeits("opponent")},
            errors=self.errors(),
        )
        return out


def _finite(value: float) -> Optional[float]:
    return None if value is None or math.isnan(value) else round(float(value), 6)


# ====================================================================== playing games in parallel
def split_batches(jobs: Sequence[Any], num_processes: int) -> List[List[Any]]:
    """Contiguous batches of ``jobs``: about ``BATCHES_PER_PROCESS`` per process, at least one job each."""
    if not jobs:
        return []
    count = max(1, min(len(jobs), num_processes * BATCHES_PER_PROCESS))
    size = math.ceil(len(jobs) / count)
    return [list(jobs[start : start + size]) for start in range(0, len(jobs), size)]


def make_pool(num_processes: int, agents: Sequence[Any], games: int, seed: int, board: Dict[str, int]) -> ProcessPoolExecutor:
    """A process pool whose workers hold ``agents``; forkserver (numpy-only, quiet), else spawn."""
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(WORKER_PRELOAD)
    else:
        context = mp.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=num_processes, mp_context=context, initializer=init_batch_worker_process, initargs=(list(agents), games, seed, board)
    )


def play_pairings(
    agents: Sequence[Any],
    pairs: Sequence[Tuple[int, int]],
    games: int,
    seed: int = 0,
    board: Optional[Dict[str, int]] = None,
    num_processes: int = 1,
    progress: Optional[Callable[[int], None]] = None,
) -> List[List[GameRecord]]:
    """Play ``games`` games for every ``(agent index, opponent index)`` pair; records per pair, in game order.

    Game ``i`` of every pair has seed ``seed + i`` (see ``match.play_opponent_games``), so the
    records are the same for every ``num_processes``. The games are split into contiguous batches;
    with ``num_processes = n > 1`` a pool of ``n - 1`` worker processes takes batches from the
    front while this process plays batches from the back (it starts at once, while the workers
    are still starting up) until the two meet.

    :param progress: called with the number of games just finished
    """
    board = dict(board or DEFAULT_BOARD)
    batches = split_batches(pairing_jobs(pairs, games), num_processes)
    records: List[List[Optional[GameRecord]]] = [[None] * games for _ in pairs]
    lock = threading.Lock()

    def collect(results: List[Tuple[int, GameRecord]]) -> None:
        with lock:  # the pool's results arrive on its management thread
            place_records(records, results, progress)

    def collect_future(future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            collect(future.result())

    workers = min(num_processes, len(batches)) - 1
    pool = make_pool(workers, agents, games, seed, board) if workers > 0 else None
    futures: List[Future] = []
    init_batch_worker(agents, games, seed, board)
    try:
        if pool is not None:
            with single_threaded_children():  # workers start as the first batches are submitted
                for batch in batches:
                    futures.append(pool.submit(play_batch, batch))
                    futures[-1].add_done_callback(collect_future)
        with single_threaded_blas() if pool is not None else contextlib.nullcontext():
            for index in reversed(range(len(batches))):
                # a batch whose future can still be cancelled has not reached a worker: play it here
                if pool is not None and not futures[index].cancel():
                    break
                collect(play_batch(batches[index]))
        for future in futures:
            if not future.cancelled():
                future.result()  # re-raises a worker's failure
    except BaseException:
        # Ctrl-C (the workers ignore it) or a broken worker: drop the queued batches and let the
        # workers finish the batch in hand; batches are small, so this takes a moment at most
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        init_batch_worker([], 0, 0, None)  # do not keep the agents alive in this process
    if pool is not None:
        pool.shutdown(wait=True)
    return [list(pair_records) for pair_records in records]  # type: ignore[arg-type]


def pairing_jobs(pairs: Sequence[Tuple[int, int]], games: int) -> List[Tuple[int, int, int, int]]:
    """``(pairing, agent index, opponent index, game index)`` for every game, pairing by pairing."""
    return [(p, a, b, g) for p, (a, b) in enumerate(pairs) for g in range(games)]


def place_records(
    records: List[List[Optional[GameRecord]]],
    results: Sequence[Tuple[int, GameRecord]],
    progress: Optional[Callable[[int], None]] = None,
) -> None:
    """Put a batch's ``(pairing, record)`` results at their game index and report their count."""
    for pairing, record in results:
        records[pairing][record.index] = record
    if progress is not None:
        progress(len(results))


# ---------------------------------------------------------------------- on a Ray cluster
#: in a Ray worker process: the key of the agents, games, seed and board that ``init_batch_worker`` holds
_RAY_WORKER_STATE: Dict[str, Any] = {}


def ray_play_batch(
    agents_box: Sequence[Any], games: int, seed: int, board: Dict[str, int], batch: Sequence[Tuple[int, int, int, int]]
) -> List[Tuple[int, GameRecord]]:
    """The body of a Ray task: ``play_batch`` in a worker process, set up once per evaluation.

    :param agents_box: ``[ObjectRef]`` of the pickled agents list; boxed in a list so that Ray
        passes the reference instead of the value, and a worker that already holds these agents
        (with the same games, seed and board) skips fetching and unpickling them again
    """
    key = (agents_box[0].hex(), games, seed, tuple(sorted(board.items())))
    if _RAY_WORKER_STATE.get("key") != key:
        import ray

        for _, set_threads in openblas_apis():  # one thread, even if the cluster's OPENBLAS_NUM_THREADS says more
            set_threads(1)
        _RAY_WORKER_STATE.clear()
        try:
            agents = pickle.loads(ray.get(agents_box[0]))
        except Exception as error:
            raise RuntimeError(
                f"cannot load the agents in a Ray worker ({type(error).__name__}: {error}); every node needs "
                "connectx_gym and the agents' files at the same paths"
            ) from None
        init_batch_worker(agents, games, seed, board)
        _RAY_WORKER_STATE["key"] = key
    return play_batch(batch)


def play_pairings_ray(
    ray: Any,
    agents: Sequence[Any],
    pairs: Sequence[Tuple[int, int]],
    games: int,
    seed: int = 0,
    board: Optional[Dict[str, int]] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> List[List[GameRecord]]:
    """``play_pairings`` on the connected Ray cluster: the same batches, one task (1 CPU) each.

    The agents go into the object store once (pickled, as for ``play_pairings``'s processes); the
    batches are split for the cluster's CPUs (``--num-processes`` plays no part) and the records
    come back as tasks finish, placed by game index, so they equal ``play_pairings``'s for the same
    seed. On Ctrl-C or a failing task the other tasks are cancelled.

    :param ray: the ``ray`` module, connected (``ray_support.connect``)
    :param progress: called with the number of games just finished
    :raises WorkerError: if a task raised or its worker died
    """
    board = dict(board or DEFAULT_BOARD)
    batches = split_batches(pairing_jobs(pairs, games), cluster_cpus(ray))
    records: List[List[Optional[GameRecord]]] = [[None] * games for _ in pairs]
    task = ray.remote(**RAY_TASK_OPTIONS)(ray_play_batch)  # here, not at import: Ray is optional
    agents_box = [ray.put(pickle.dumps(list(agents)))]  # unpickled by the task itself: its errors are ours to word
    pending = [task.remote(agents_box, games, seed, board, batch) for batch in batches]
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                results = ray.get(ready[0])
            except ray.exceptions.RayError as error:
                raise WorkerError(_ray_failure(error)) from None
            place_records(records, results, progress)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return [list(pair_records) for pair_records in records]  # type: ignore[arg-type]


def _ray_failure(error: BaseException) -> str:
    """One line for a failed Ray task: the exception it raised (not its remote traceback), or why it died."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        what = f"raised {type(cause).__name__}: {cause}".strip()
    else:
        text = str(error).strip()
        what = text.splitlines()[0] if text else type(error).__name__
    return f"a Ray task playing games failed: {what.splitlines()[0]}; try --backend local"


def connect_ray(address: str) -> Tuple[Any, bool]:
    """Join the cluster at ``address`` or start a local instance; ``(ray, whether this call started it)``.

    :raises UserError: naming ``--ray-address`` if the cluster cannot be reached
    """
    ray = import_ray("--backend ray")
    started = not ray.is_initialized()
    connect(address, what="--backend ray", option="--ray-address")
    return ray, started


# ====================================================================== agents and boards
@dataclass
class AgentEntry:
    label: str
    agent: Any
    step: Optional[int] = None


def build_agent(spec: str) -> AgentEntry:
    """Check a spec's syntax, then build the agent (loads checkpoints and agent files)."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"empty agent spec {spec!r}")
    if os.path.isdir(spec.strip()):
        raise UserError(
            f"{spec.strip()!r} is a directory; only the evaluated agent may be a run directory "
            f"(name a checkpoint in it instead, e.g. {os.path.join(spec.strip(), 'final_model.zip')})"
        )
    return AgentEntry(label=spec.strip(), agent=make_agent(_check_spec(spec)))


def _check_spec(spec: str):
    """``parse_agent_spec``, with a plain message for a path that names nothing."""
    text = spec.strip()
    looks_like_path = ("/" in text or os.sep in text) and not text.lower().endswith((".zip", ".py"))
    if looks_like_path and ":" not in text and not os.path.exists(text):
        raise UserError(f"agent {text!r} is neither an agent spec nor an existing run directory")
    parsed = parse_agent_spec(spec)
    if parsed.kind in TRAINING_ONLY_KINDS:
        raise UserError(f"{text!r} exists only inside training (it plays snapshots of the learner); name a checkpoint instead")
    return parsed


def is_run_directory(path: str) -> bool:
    return os.path.isdir(path)


def run_checkpoints(run_dir: str) -> List[AgentEntry]:
    """Every loadable checkpoint of a run, oldest first; unreadable ones are skipped with a warning."""
    from connectx_gym.game.agents import CheckpointOpponent
    from connectx_gym.training.checkpoints import CHECKPOINT_DIR, CheckpointError, list_checkpoints

    found = list_checkpoints(run_dir)
    if not found:
        raise UserError(
            f"'{run_dir}' is a directory without checkpoints ({os.path.join(run_dir, CHECKPOINT_DIR, 'step_*.zip')}); "
            "is it a run directory?"
        )
    entries = []
    for step, path in found:
        try:
            entries.append(AgentEntry(label=f"step {step}", agent=CheckpointOpponent.from_file(path), step=step))
        except CheckpointError as error:
            print(f"warning: skipping {error}", file=sys.stderr)
    if not entries:
        raise UserError(f"no loadable checkpoint in '{os.path.join(run_dir, CHECKPOINT_DIR)}'")
    return entries


def resolve_board(entries: Sequence[AgentEntry], rows: Optional[int], columns: Optional[int], inarow: Optional[int]) -> Dict[str, int]:
    """The board to play on: explicit values, else the checkpoints' board, else 6x7 with 4 in a row.

    :raises UserError: if checkpoints disagree with each other or with the board asked for
    """
    bound = [(entry.label, agent_board(entry.agent)) for entry in entries]
    bound = [(label, b) for label, b in bound if b is not None]
    base = dict(bound[0][1]) if bound else dict(DEFAULT_BOARD)
    for key, value in (("rows", rows), ("columns", columns), ("inarow", inarow)):
        if value is not None:
            if value < 1:
                raise UserError(f"--{key} must be an integer >= 1, got {value}")
            base[key] = value
    for label, b in bound:
        if b != base:
            raise UserError(
                f"agent {label!r} was trained on a {board_text(b)} board, but the evaluation board is {board_text(base)}"
            )
    return base


# ====================================================================== tables and files
def _percent(value: Optional[float]) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _wdl(record: SeatRecord) -> str:
    return f"{record.wins}-{record.draws}-{record.losses}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def pairings_table(results: Sequence[PairingResult], show_agent: bool = True, show_step: bool = False) -> str:
    headers: List[str] = []
    right: List[bool] = []
    if show_step:
        headers.append("step")
        right.append(True)
    if show_agent:
        headers.append("agent")
        right.append(False)
    headers += ["opponent", "games", "W", "D", "L", "win rate", "95% CI", "first W-D-L", "second W-D-L", "forfeits"]
    right += [False, True, True, True, True, True, False, True, True, True]
    rows = []
    for result in results:
        total, seats = result.total, result.seats
        low, high = result.win_rate_ci
        row: List[str] = []
        if show_step:
            row.append(str(result.step))
        if show_agent:
            row.append(result.agent)
        row += [
            result.opponent, str(total.games), str(total.wins), str(total.draws), str(total.losses),
            _percent(result.win_rate), f"[{_percent(low)}, {_percent(high)}]",
            _wdl(seats["first"]), _wdl(seats["second"]),
            f"{result.forfeits('agent')}/{result.forfeits('opponent')}",
        ]
        rows.append(row)
    return format_table(headers, rows, right)


def ratings_table(labels: Sequence[str], ratings: Ratings, results: Sequence[PairingResult]) -> str:
    points = {label: 0.0 for label in labels}
    played = {label: 0 for label in labels}
    for result in results:
        total = result.total
        points[result.agent] += total.wins + 0.5 * total.draws
        points[result.opponent] += total.losses + 0.5 * total.draws
        played[result.agent] += total.games
        played[result.opponent] += total.games
    order = sorted(range(len(labels)), key=lambda i: -ratings.elo[i])
    rows = [
        [
            str(rank), labels[i], f"{ratings.elo[i]:+.0f}", f"[{ratings.low[i]:+.0f}, {ratings.high[i]:+.0f}]",
            f"{points[labels[i]]:g}/{played[labels[i]]}", _percent(points[labels[i]] / played[labels[i]] if played[labels[i]] else math.nan),
        ]
        for rank, i in enumerate(order, 1)
    ]
    return format_table(
        ["rank", "agent", "Elo", "95% CI", "points", "score"], rows, [True, False, True, True, True, True]
    )


CSV_FIELDS = [
    "agent", "opponent", "step", "games", "wins", "draws", "losses", "win_rate", "ci95_low", "ci95_high", "score",
    "first_wins", "first_draws", "first_losses", "second_wins", "second_draws", "second_losses",
    "agent_forfeits", "opponent_forfeits",
]


def csv_text(results: Sequence[PairingResult]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        data = result.to_dict()
        writer.writerow({
            "agent": data["agent"], "opponent": data["opponent"], "step": data.get("step", ""),
            "games": data["games"], "wins": data["wins"], "draws": data["draws"], "losses": data["losses"],
            "win_rate": data["win_rate"], "ci95_low": data["win_rate_ci95"][0], "ci95_high": data["win_rate_ci95"][1],
            "score": data["score"],
            **{f"{seat}_{key}": data["seats"][seat][key] for seat in ("first", "second") for key in ("wins", "draws", "losses")},
            "agent_forfeits": data["forfeits"]["agent"], "opponent_forfeits": data["forfeits"]["opponent"],
        })
    return buffer.getvalue()


def _write_text(path: str, text: str, what: str) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write {what} '{path}': {error.strerror or error}") from None


# ====================================================================== plot
def plot_progress(results: Sequence[PairingResult], path: str, title: str) -> None:
    """Win rate vs training step, one line per opponent, with 95% Wilson bands (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    opponents: Dict[str, List[PairingResult]] = {}
    for result in results:
        opponents.setdefault(result.opponent, []).append(result)
    games = max((r.games for r in results), default=0)
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    for index, (opponent, series) in enumerate(opponents.items()):
        series = sorted(series, key=lambda r: r.step)
        steps = np.array([r.step for r in series], dtype=float)
        rates = np.array([r.win_rate for r in series])
        lows = np.array([r.win_rate_ci[0] for r in series])
        highs = np.array([r.win_rate_ci[1] for r in series])
        color = f"C{index % 10}"
        axes.plot(steps, rates, marker="o", color=color, label=f"vs {opponent}")
        axes.fill_between(steps, lows, highs, color=color, alpha=0.18, linewidth=0)
        axes.errorbar(steps, rates, yerr=[rates - lows, highs - rates], fmt="none", ecolor=color, alpha=0.6, capsize=3)
    axes.set_xlabel("training step")
    axes.set_ylabel("win rate")
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylim(-0.02, 1.02)
    axes.grid(True, alpha=0.3)
    axes.set_title(f"{title}\nwin rate vs training step ({games} games per point, 95% Wilson intervals)")
    axes.legend(title="opponent", loc="best")
    figure.tight_layout()
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    except OSError as error:
        raise UserError(f"cannot write plot '{path}': {error.strerror or error}") from None
    finally:
        plt.close(figure)


# ====================================================================== replay
def replay_text(result: PairingResult, record: GameRecord, board: Dict[str, int]) -> str:
    """A plain-text move list and the final board of one game."""
    from connectx_gym.game.bitboard import Position, geometry

    position = Position(geometry(board["rows"], board["columns"], board["inarow"]))
    names = {1: result.agent, 2: result.opponent} if record.agent_first else {1: result.opponent, 2: result.agent}
    lines = [
        f"game {record.index} of {result.agent} vs {result.opponent} (seed {record.seed}, board {board_text(board)})",
        f"player 1 (moves first): {names[1]}",
        f"player 2: {names[2]}",
        "",
    ]
    for ply, column in enumerate(record.moves, 1):
        lines.append(f"{ply:3d}. player {position.to_move} ({names[position.to_move]}): column {column}")
        position.play(column)
    if record.forfeit:
        mark = position.to_move
        lines.append(f"{len(record.moves) + 1:3d}. player {mark} ({names[mark]}) forfeits: {record.error}")
    lines += ["", position.render(), ""]
    outcome = {"win": f"{result.agent} wins", "loss": f"{result.opponent} wins", "draw": "draw"}[record.outcome]
    lines.append(f"result: {outcome}" + (f" ({record.forfeit} forfeited)" if record.forfeit else ""))
    return "\n".join(lines) + "\n"


def replay_html(result: PairingResult, record: GameRecord, board: Dict[str, int]) -> str:
    """One game replayed in Kaggle's ``connectx`` environment and rendered as its HTML player.

    A forfeit by an illegal column is stepped as that column (Kaggle marks it invalid); a forfeit
    by an exception is stepped as column -1, which Kaggle also shows as an invalid move.
    """
    import contextlib

    with contextlib.redirect_stderr(io.StringIO()):
        from kaggle_environments import make
    env = make("connectx", configuration=dict(board), debug=False)
    names = [result.agent, result.opponent] if record.agent_first else [result.opponent, result.agent]
    moves = list(record.moves)
    if record.forfeit:
        moves.append(record.illegal_column if record.illegal_column is not None else -1)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        for ply, column in enumerate(moves):
            if env.done:
                break
            actions = [column, None] if ply % 2 == 0 else [None, column]
            env.step(actions)
    env.info["TeamNames"] = names
    return env.render(mode="html")


# ====================================================================== CLI
def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m connectx_gym.evaluate",
        description=(
            "Evaluate ConnectX agents: matches with 95% Wilson intervals, Elo tournaments, "
            "win rate vs training step of a run, Kaggle replays. Agent specs: random, negamax, "
            "alphabeta:<depth>, kaggle:<name|file.py>, checkpoint:<model.zip>; " + BARE_PATH_NOTE + "."
        ),
    )
    parser.add_argument("agent", nargs="?", help="the agent to evaluate (a spec), or a run directory models/<run>")
    parser.add_argument("--opponents", nargs="+", metavar="SPEC", help=f"opponents of the agent (default: {' '.join(DEFAULT_OPPONENTS)})")
    parser.add_argument("--tournament", nargs="+", metavar="SPEC", help="round robin between these agents, with Elo ratings")
    parser.add_argument("--games", type=int, default=100, help="games per pairing, half in each seat (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="game i of every pairing uses seed SEED + i (default: 0)")
    parser.add_argument("--num-processes", type=int, default=None,
                        help="processes playing games, this one included (default: all usable cores; "
                             "not used with --backend ray, whose tasks (1 CPU each) fill every CPU of the cluster)")
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="where games are played: local (processes on this machine; default) or ray "
                             "(Ray tasks, 1 CPU each; needs the ray extra); the records are the same")
    parser.add_argument("--ray-address", default="", metavar="ADDRESS",
                        help="with --backend ray: 'auto' (the cluster 'ray start' runs on this machine) or "
                             "host:port to join a cluster (default: start a local Ray instance on this machine's usable cores)")
    parser.add_argument("--rows", type=int, help="board rows (default: the checkpoints' board, else 6)")
    parser.add_argument("--columns", type=int, help="board columns (default: the checkpoints' board, else 7)")
    parser.add_argument("--inarow", type=int, help="stones in a row to win (default: the checkpoints' board, else 4)")
    parser.add_argument("--elo-prior", type=float, default=1.0, metavar="DRAWS",
                        help="virtual draws of each agent against a reference player of rating 0, keeping ratings finite (default: 1; 0: plain MLE)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--csv", metavar="PATH", help="write one CSV row per pairing")
    parser.add_argument("--plot", metavar="PATH", help="with a run directory: win rate vs training step (PNG)")
    parser.add_argument("--replay", metavar="PATH", help="write one game as Kaggle's HTML player")
    parser.add_argument("--replay-text", metavar="PATH", help="write that game's move list and final board")
    parser.add_argument("--replay-pairing", type=int, default=0, metavar="K", help="replay a game of the K-th pairing (0-based, table order; default 0)")
    parser.add_argument("--replay-game", type=int, default=0, metavar="I", help="replay game I of that pairing (default 0)")
    return parser.parse_args(argv)


def _check_args(args: argparse.Namespace) -> None:
    if args.tournament and args.agent:
        raise UserError("give either an agent (with --opponents) or --tournament, not both")
    if args.tournament and args.opponents:
        raise UserError("--opponents does not apply to --tournament; list every agent after --tournament")
    if not args.tournament and not args.agent:
        raise UserError("name an agent to evaluate (e.g. models/<run>/final_model.zip) or use --tournament A B ...")
    if args.tournament and len(args.tournament) < 2:
        raise UserError("--tournament needs at least two agents")
    if args.games < 1:
        raise UserError(f"--games must be >= 1, got {args.games}")
    if args.num_processes is not None and args.num_processes < 1:
        raise UserError(f"--num-processes must be >= 1, got {args.num_processes}")
    if args.ray_address and args.backend != "ray":
        raise UserError(f"--ray-address {args.ray_address} needs --backend ray (got --backend {args.backend})")
    if args.elo_prior < 0 or not math.isfinite(args.elo_prior):
        raise UserError(f"--elo-prior must be a number >= 0, got {args.elo_prior}")
    if args.replay_game < 0 or args.replay_game >= args.games:
        raise UserError(f"--replay-game must be in 0..{args.games - 1}, got {args.replay_game}")
    if args.tournament:
        labels = [spec.strip() for spec in args.tournament]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise UserError(f"--tournament lists {', '.join(map(repr, duplicates))} more than once")


def _progress_bar(total: int):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="game", desc="evaluate", dynamic_ncols=True, file=sys.stderr, leave=False)


def _timed_play(
    total_games: int, play: Callable[[Optional[Callable[[int], None]]], List[List[GameRecord]]]
) -> Tuple[List[List[GameRecord]], float]:
    """``play(progress)`` under a progress bar (on a terminal); its records and the seconds it took."""
    bar = _progress_bar(total_games)
    started = time.perf_counter()
    try:
        records = play(bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    return records, time.perf_counter() - started


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Validate, play, print and write everything; returns the JSON document."""
    _check_args(args)
    if args.backend == "ray":
        import_ray("--backend ray")  # before loading any agent: say at once that Ray is missing
    mode = "tournament" if args.tournament else "match"
    run_dir = None
    if mode == "match" and is_run_directory(args.agent.strip()):
        mode, run_dir = "run", args.agent.strip()
    elif args.plot:
        raise UserError("--plot needs a run directory as the agent (python -m connectx_gym.evaluate models/<run> --plot out.png)")
    # syntax of every spec first (cheap), then build them (files, checkpoints)
    specs = list(args.tournament or args.opponents or DEFAULT_OPPONENTS)
    if mode == "match":
        specs = [args.agent] + specs
    for spec in specs:
        if not os.path.isdir(spec.strip()):
            _check_spec(spec)
    if mode == "run":
        checkpoints = run_checkpoints(run_dir)
        entries = checkpoints + [build_agent(spec) for spec in specs]
        pairs = [(c, len(checkpoints) + o) for c in range(len(checkpoints)) for o in range(len(specs))]
    else:
        entries = [build_agent(spec) for spec in specs]
        if mode == "match":
            pairs = [(0, o) for o in range(1, len(entries))]
        else:
            pairs = [(a, b) for a in range(len(entries)) for b in range(a + 1, len(entries))]
    board = resolve_board(entries, args.rows, args.columns, args.inarow)
    if not 0 <= args.replay_pairing < len(pairs):
        raise UserError(f"--replay-pairing must be in 0..{len(pairs) - 1}, got {args.replay_pairing}")
    total_games = len(pairs) * args.games
    agents = [entry.agent for entry in entries]
    if args.backend == "ray":
        ray, started_ray = connect_ray(args.ray_address)
        try:
            ray_cpus = cluster_cpus(ray)
            records, elapsed = _timed_play(
                total_games, lambda progress: play_pairings_ray(ray, agents, pairs, args.games, args.seed, board, progress)
            )
        finally:
            if started_ray:
                ray.shutdown()
        num_processes, workers = None, f"on Ray ({ray_cpus} CPU{'s' if ray_cpus != 1 else ''})"
    else:
        num_processes = args.num_processes or usable_cpu_count()
        records, elapsed = _timed_play(
            total_games, lambda progress: play_pairings(agents, pairs, args.games, args.seed, board, num_processes, progress)
        )
        workers = f"with {min(num_processes, max(1, total_games))} process(es)"
    results = [
        PairingResult(entries[a].label, entries[b].label, a, b, pair_records, step=entries[a].step)
        for (a, b), pair_records in zip(pairs, records)
    ]

    header = (
        f"board {board_text(board)}; {args.games} games per pairing (half in each seat), seed {args.seed}; "
        f"{total_games} games in {elapsed:.1f} s {workers}"
    )
    document: Dict[str, Any] = {
        "mode": mode, "board": board, "games_per_pairing": args.games, "seed": args.seed, "backend": args.backend,
        "num_processes": num_processes, "elapsed_s": round(elapsed, 3),
        "agents": [entry.label for entry in entries],
        "pairings": [result.to_dict() for result in results],
    }
    if args.backend == "ray":
        document["ray_cpus"] = ray_cpus
    print(header)
    if mode == "match":
        print(f"agent: {entries[0].label}\n")
        print(pairings_table(results, show_agent=False))
    elif mode == "run":
        document["run_dir"] = run_dir
        print(f"run: {run_dir} ({len(checkpoints)} checkpoints)\n")
        print(pairings_table(results, show_agent=False, show_step=True))
    else:
        labels = [entry.label for entry in entries]
        n = len(labels)
        scores, games = np.zeros((n, n)), np.zeros((n, n))
        for result in results:
            total = result.total
            a, b = result.agent_index, result.opponent_index
            scores[a, b] += total.wins + 0.5 * total.draws
            scores[b, a] += total.losses + 0.5 * total.draws
            games[a, b] += total.games
            games[b, a] += total.games
        try:
            ratings = bradley_terry(scores, games, prior_draws=args.elo_prior)
        except ValueError as error:
            raise UserError(f"{error} (--elo-prior)") from None
        print()
        print(ratings_table(labels, ratings, results))
        print("\nElo: Bradley-Terry maximum likelihood (draws = half wins), mean 0, "
              f"95% CI from the Fisher information; prior {args.elo_prior:g} virtual draw(s) per agent\n")
        print(pairings_table(results))
        document["elo"] = {
            "method": "Bradley-Terry maximum likelihood, draws as half wins, Newton's method",
            "anchor": "mean 0", "prior_draws": args.elo_prior,
            "ratings": [
                {"agent": labels[i], "elo": round(float(ratings.elo[i]), 2),
                 "ci95": [round(float(ratings.low[i]), 2), round(float(ratings.high[i]), 2)],
                 "stderr": round(float(ratings.stderr[i]), 2)}
                for i in sorted(range(n), key=lambda i: -ratings.elo[i])
            ],
        }
    errors = [message for result in results for message in result.errors()]
    if errors:
        print("\nforfeits (agent/opponent counts in the table):")
        for message in errors:
            print(f"  {message}")

    if args.replay or args.replay_text:
        result = results[args.replay_pairing]
        record = result.records[args.replay_game]
        text = replay_text(result, record, board)
        print("\n" + text, end="")
        if args.replay_text:
            _write_text(args.replay_text, text, "replay text")
        if args.replay:
            _write_text(args.replay, replay_html(result, record, board), "replay")
    if args.plot:
        plot_progress(results, args.plot, title=f"run {Path(run_dir).name}")
    if args.json:
        _write_text(args.json, json.dumps(document, indent=2) + "\n", "JSON")
    if args.csv:
        _write_text(args.csv, csv_text(results), "CSV")
    written = [path for path in (args.json, args.csv, args.plot, args.replay, args.replay_text) if path]
    if written:
        print("\nwrote " + ", ".join(written))
    return document


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        run(parse_args(argv))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenProcessPool as error:
        print(f"error: a worker process died ({error}); try --num-processes 1", file=sys.stderr)
        return 1
    except WorkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
