"""Playing the games of many pairings in parallel, on this machine's processes or as Ray tasks, with
records that depend only on the seed: the games are cut into contiguous batches of
``(pairing, agent, opponent, game)`` jobs, game ``g`` of a pairing always plays with seed ``seed + g``
and the seat and opening ``match.game_setup`` gives it (``match.play_batch``), and each batch's
records are put back at their game index as they arrive."""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import pickle
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from connectx_gym.errors import WorkerError
from connectx_gym.evaluation.match import (
    DEFAULT_BOARD,
    GameRecord,
    init_batch_worker,
    init_batch_worker_process,
    play_batch,
)
from connectx_gym.runtime.processes import openblas_apis, single_threaded_blas, single_threaded_children
from connectx_gym.runtime.ray_cluster import cluster_cpus, connect, import_ray

#: modules a worker process preloads (forkserver): quiet gym banner, the env, agents and game loops
WORKER_PRELOAD = [
    "connectx_gym.runtime.quiet",
    "connectx_gym.envs.connectx",
    "connectx_gym.agents.specs",
    "connectx_gym.agents.checkpoint",
    "connectx_gym.agents.mcts",
    "connectx_gym.evaluation.match",
]
#: batches per process: small enough to balance games of uneven length, each still many games
BATCHES_PER_PROCESS = 32
#: resources of one Ray task: it plays one batch of games on one thread
RAY_TASK_OPTIONS: dict[str, Any] = {"num_cpus": 1}

#: ``(pairing, agent index, opponent index, game index)``: one game to play
Job = tuple[int, int, int, int]
Progress = Callable[[int], None]
#: each opening's columns from the empty board, or ``None`` for games from the empty board
Openings = Sequence[Sequence[int]] | None


def split_batches(jobs: Sequence[Any], num_processes: int) -> list[list[Any]]:
    """Contiguous batches of ``jobs``: about ``BATCHES_PER_PROCESS`` per process, at least one job each."""
    if not jobs:
        return []
    count = max(1, min(len(jobs), num_processes * BATCHES_PER_PROCESS))
    size = math.ceil(len(jobs) / count)
    return [list(jobs[start : start + size]) for start in range(0, len(jobs), size)]


def pairing_jobs(pairs: Sequence[tuple[int, int]], games: int) -> list[Job]:
    """``(pairing, agent index, opponent index, game index)`` for every game, pairing by pairing."""
    return [(p, a, b, g) for p, (a, b) in enumerate(pairs) for g in range(games)]


def place_records(
    records: list[list[GameRecord | None]],
    results: Sequence[tuple[int, GameRecord]],
    progress: Progress | None = None,
) -> None:
    """Put a batch's ``(pairing, record)`` results at their game index and report their count."""
    for pairing, record in results:
        records[pairing][record.index] = record
    if progress is not None:
        progress(len(results))


# ---------------------------------------------------------------------- on this machine
def make_pool(
    num_processes: int,
    agents: Sequence[Any],
    games: int,
    seed: int,
    board: dict[str, int],
    openings: Openings = None,
) -> ProcessPoolExecutor:
    """A process pool whose workers hold ``agents``; forkserver (numpy-only, quiet), else spawn."""
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(WORKER_PRELOAD)
    else:
        context = mp.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=num_processes,
        mp_context=context,
        initializer=init_batch_worker_process,
        initargs=(list(agents), games, seed, board, _plain(openings)),
    )


def play_pairings(
    agents: Sequence[Any],
    pairs: Sequence[tuple[int, int]],
    games: int,
    seed: int = 0,
    board: dict[str, int] | None = None,
    num_processes: int = 1,
    progress: Progress | None = None,
    openings: Openings = None,
) -> list[list[GameRecord]]:
    """Play ``games`` games for every ``(agent index, opponent index)`` pair; records per pair, in game order.

    Game ``i`` of every pair has seed ``seed + i`` and the seat and opening of ``match.game_setup``
    (see ``match.play_opponent_games``), so the records are the same for every ``num_processes``.
    The games are split into contiguous batches; with ``num_processes = n > 1`` a pool of ``n - 1``
    worker processes takes batches from the front while this process plays batches from the back
    (it starts at once, while the workers are still starting up) until the two meet.

    :param progress: called with the number of games just finished
    :param openings: the opening suite's moves (``OpeningSuite.moves()``), or ``None``: the empty board
    :raises concurrent.futures.process.BrokenProcessPool: if a worker process died
    """
    board = dict(board or DEFAULT_BOARD)
    openings = _plain(openings)
    batches = split_batches(pairing_jobs(pairs, games), num_processes)
    records: list[list[GameRecord | None]] = [[None] * games for _ in pairs]
    lock = threading.Lock()

    def collect(results: list[tuple[int, GameRecord]]) -> None:
        with lock:  # the pool's results arrive on its management thread
            place_records(records, results, progress)

    workers = min(num_processes, len(batches)) - 1
    pool = make_pool(workers, agents, games, seed, board, openings) if workers > 0 else None
    init_batch_worker(agents, games, seed, board, openings)
    try:
        _play_batches(pool, batches, collect)
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


def _plain(openings: Openings) -> tuple[tuple[int, ...], ...] | None:
    """Openings as tuples of ints (cheap to pickle and to compare), ``None`` for none."""
    return tuple(tuple(int(column) for column in moves) for moves in openings) if openings else None


def _play_batches(
    pool: ProcessPoolExecutor | None,
    batches: Sequence[list[Job]],
    collect: Callable[[list[tuple[int, GameRecord]]], None],
) -> None:
    """Workers take ``batches`` from the front while this process plays them from the back."""

    def collect_future(future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            collect(future.result())

    futures: list[Future] = []
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


# ---------------------------------------------------------------------- on a Ray cluster
#: in a Ray worker process: the key of the agents, games, seed, board and openings that ``init_batch_worker`` holds
_RAY_WORKER_STATE: dict[str, Any] = {}


def ray_play_batch(
    agents_box: Sequence[Any],
    games: int,
    seed: int,
    board: dict[str, int],
    batch: Sequence[Job],
    openings: Openings = None,
) -> list[tuple[int, GameRecord]]:
    """The body of a Ray task: ``play_batch`` in a worker process, set up once per evaluation.

    :param agents_box: ``[ObjectRef]`` of the pickled agents list; boxed in a list so that Ray
        passes the reference instead of the value, and a worker that already holds these agents
        (with the same games, seed, board and openings) skips fetching and unpickling them again
    :param openings: as for ``play_pairings``
    """
    openings = _plain(openings)
    key = (agents_box[0].hex(), games, seed, tuple(sorted(board.items())), openings)
    if _RAY_WORKER_STATE.get("key") != key:
        # optional extra [ray]: imported only when Ray is used
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
        init_batch_worker(agents, games, seed, board, openings)
        _RAY_WORKER_STATE["key"] = key
    return play_batch(batch)


def play_pairings_ray(
    ray: Any,
    agents: Sequence[Any],
    pairs: Sequence[tuple[int, int]],
    games: int,
    seed: int = 0,
    board: dict[str, int] | None = None,
    progress: Progress | None = None,
    openings: Openings = None,
) -> list[list[GameRecord]]:
    """``play_pairings`` on the connected Ray cluster: the same batches, one task (1 CPU) each.

    The agents go into the object store once (pickled, as for ``play_pairings``'s processes); the
    batches are split for the cluster's CPUs (``--num-processes`` plays no part) and the records
    come back as tasks finish, placed by game index, so they equal ``play_pairings``'s for the same
    seed. On Ctrl-C or a failing task the other tasks are cancelled.

    :param ray: the ``ray`` module, connected (``connect_ray``)
    :param progress: called with the number of games just finished
    :param openings: as for ``play_pairings``
    :raises WorkerError: if a task raised or its worker died
    """
    board = dict(board or DEFAULT_BOARD)
    openings = _plain(openings)
    batches = split_batches(pairing_jobs(pairs, games), cluster_cpus(ray))
    records: list[list[GameRecord | None]] = [[None] * games for _ in pairs]
    task = ray.remote(**RAY_TASK_OPTIONS)(ray_play_batch)  # here, not at import: Ray is optional
    agents_box = [ray.put(pickle.dumps(list(agents)))]  # unpickled by the task itself: its errors are ours to word
    pending = [task.remote(agents_box, games, seed, board, batch, openings) for batch in batches]
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


def connect_ray(address: str) -> tuple[Any, bool]:
    """Join the cluster at ``address`` or start a local instance; ``(ray, whether this call started it)``.

    :raises UserError: naming ``--ray-address`` if the cluster cannot be reached
    """
    ray = import_ray("--backend ray")
    started = not ray.is_initialized()
    connect(address, what="--backend ray", option="--ray-address")
    return ray, started
