"""AlphaZero's loop (train.algorithm: alphazero): self-play targets against a brute-forced small board,
the replay window (mirroring, merged repeats, its save), the trainer's checkpoints, and resume giving
the run an uninterrupted one gives."""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import pytest
from helpers import TINY_AZ

from connectx_gym.search.puct_board import SearchBoard
from connectx_gym.training.az_selfplay import SelfPlaySettings, play_games, value_targets
from connectx_gym.training.replay_window import ReplayWindow, full_planes

SMALL = (3, 4, 3)  # rows, columns, inarow: small enough to solve by brute force


def uniform(planes: np.ndarray):
    """A network that knows nothing: even logits, value 0."""
    return np.zeros((len(planes), planes.shape[-1])), np.zeros(len(planes))


@functools.cache
def solve(own: int, mask: int) -> int:
    """The exact value of a position of SMALL for the player to move: 1 win, 0 draw, -1 loss."""
    board = SearchBoard(*SMALL)
    best = -1
    for column in range(board.columns):
        bit = (mask + board.bottom_cells[column]) & board.column_masks[column]
        if not bit:
            continue
        if board.has_line(own | bit):
            return 1
        if mask | bit == board.full:
            best = max(best, 0)
            continue
        best = max(best, -solve(mask ^ own, mask | bit))
    return best


def bitboards(stones: np.ndarray) -> tuple[int, int]:
    """The (mover's stones, all stones) of a sample's stone planes, in the search's layout."""
    rows, columns = stones.shape[1:]
    own = mask = 0
    for r in range(rows):
        for c in range(columns):
            bit = 1 << (c * (rows + 1) + (rows - 1 - r))
            if stones[0, r, c]:
                own |= bit
            if stones[0, r, c] or stones[1, r, c]:
                mask |= bit
    return own, mask


@pytest.fixture(scope="module")
def small_games():
    settings = SelfPlaySettings(simulations=400, temperature_moves=4)
    return play_games(uniform, SMALL, 12, settings, seed=3, parallel=5)


def test_proven_targets_are_the_brute_forced_values(small_games):
    samples = small_games
    assert samples.proven.any() and not samples.proven.all()
    for stones, policy, q, exact in zip(samples.stones, samples.policy, samples.q, samples.proven):
        own, mask = bitboards(stones)
        if exact:
            assert q == solve(own, mask)
            # all the mass on one move, and that move keeps the value
            (column,) = np.flatnonzero(policy)
            board = SearchBoard(*SMALL)
            bit = (mask + board.bottom_cells[column]) & board.column_masks[column]
            after = (
                1 if board.has_line(own | bit) else (0 if mask | bit == board.full else -solve(mask ^ own, mask | bit))
            )
            assert after == q
        else:
            assert abs(policy.sum() - 1) < 1e-5 and -1 <= q <= 1


def test_outcomes_follow_the_games_and_alternate_by_mover(small_games):
    samples = small_games
    cells = SMALL[0] * SMALL[1]
    # samples come game after game: a game starts where the board is empty
    starts = [i for i, stones in enumerate(samples.stones) if not stones.any()] + [len(samples)]
    assert len(starts) - 1 == samples.stats["games"] == 12
    for begin, end in zip(starts, starts[1:]):
        z = samples.z[begin:end]
        assert all(z[i] == -z[i + 1] for i in range(len(z) - 1))  # the movers alternate
        # the last mover won, unless its move filled the board without a line
        last_stones = int(samples.stones[end - 1].sum())
        assert z[-1] == 1.0 or (z[-1] == 0.0 and last_stones == cells - 1)


@functools.cache
def quickest(own: int, mask: int) -> int:
    """The stones on SMALL's board when a won position's mover wins by the quickest win (a lost one's, the
    slowest loss), both playing so; the board's stones where a position is drawn."""
    board = SearchBoard(*SMALL)
    value, ends = solve(own, mask), []
    for column in range(board.columns):
        bit = (mask + board.bottom_cells[column]) & board.column_masks[column]
        if not bit:
            continue
        stones = (mask | bit).bit_count()
        if board.has_line(own | bit) or mask | bit == board.full:
            ends.append(((1 if board.has_line(own | bit) else 0), stones))
        else:
            ends.append((-solve(mask ^ own, mask | bit), quickest(mask ^ own, mask | bit)))
    kept = [end for result, end in ends if result == value]
    return (min(kept) if value > 0 else max(kept)) if value else mask.bit_count()


def test_a_length_weight_shrinks_outcomes_and_proofs_by_the_games_length():
    weight, cells = 0.5, SMALL[0] * SMALL[1]
    settings = SelfPlaySettings(simulations=400, temperature_moves=4, length_weight=weight)
    samples = play_games(uniform, SMALL, 12, settings, seed=3, parallel=5)
    starts = [i for i, stones in enumerate(samples.stones) if not stones.any()] + [len(samples)]
    lengths = set()
    for begin, end in zip(starts, starts[1:]):
        z = samples.z[begin:end]
        won = 1 - weight * (end - begin) / cells  # the game's length: one sample per move
        assert z[-1] in (0.0, pytest.approx(won)) and all(z[i] == -z[i + 1] for i in range(len(z) - 1))
        lengths.add(end - begin)
    assert len(lengths) > 1  # games of several lengths: the outcomes differ
    proven = 0
    for stones, q, exact in zip(samples.stones, samples.q, samples.proven):
        own, mask = bitboards(stones)
        value = solve(own, mask)
        if exact and value:
            proven += 1
            # the sign of the exact result, shrunk by the length of a line the search proved: no quicker win
            # (no slower loss) than perfect play's
            best = value * (1 - weight * quickest(own, mask) / cells)
            assert np.sign(q) == value
            assert abs(q) <= abs(best) + 1e-6 if value > 0 else abs(q) >= abs(best) - 1e-6
            assert abs(q) >= 1 - weight  # a length of at most the whole board
        elif exact:
            assert q == 0
    assert proven


def test_value_targets_mix_outcome_and_search_but_keep_proofs(small_games):
    samples = small_games
    mix = value_targets(samples, "mix")
    open_ = ~samples.proven
    np.testing.assert_allclose(mix[open_], (samples.z[open_] + samples.q[open_]) / 2)
    for kind in ("z", "q", "mix"):
        assert np.array_equal(value_targets(samples, kind)[samples.proven], samples.q[samples.proven])
    with pytest.raises(ValueError, match="must be one of z|q|mix"):
        value_targets(samples, "outcome")


def test_the_same_seed_plays_the_same_games():
    settings = SelfPlaySettings(simulations=16)
    a = play_games(uniform, SMALL, 4, settings, seed=7, parallel=2)
    b = play_games(uniform, SMALL, 4, settings, seed=7, parallel=2)
    c = play_games(uniform, SMALL, 4, settings, seed=8, parallel=2)
    assert np.array_equal(a.stones, b.stones) and np.array_equal(a.policy, b.policy)
    assert not (len(a) == len(c) and np.array_equal(a.stones, c.stones))


def test_the_window_mirrors_and_merges_repeats_with_averaged_targets():
    rows, columns = 2, 3
    empty = np.zeros((2, rows, columns), np.uint8)
    left = empty.copy()
    left[1, 1, 0] = 1  # the other's stone bottom left
    right = left[..., ::-1].copy()
    window = ReplayWindow(2)
    window.add(np.stack([empty, left]), np.array([[1, 0, 0], [0, 1, 0]], np.float32), np.array([0.5, 1.0], np.float32))
    window.add(np.stack([right]), np.array([[0, 0, 1]], np.float32), np.array([-1.0], np.float32))
    data = window.training_set(mirror=True)
    # 3 samples and their mirror images: the empty board twice, left and right three times each
    assert data.samples == 6 and len(data.planes) == 3 and data.duplicate_share == 0.5
    keys = [tuple(p[:2].astype(int).ravel()) for p in data.planes]
    empty_row = keys.index(tuple(empty.ravel()))
    np.testing.assert_allclose(data.targets[empty_row], [0.5, 0, 0.5])  # the empty board, averaged with its mirror
    left_row = keys.index(tuple(left.ravel()))
    # left: its own sample (policy centre, value 1) and right's mirror image (policy to the left, value -1)
    np.testing.assert_allclose(data.targets[left_row], [0.5, 0.5, 0])
    assert data.values[left_row] == 0.0
    # the full planes: playable cells above the stones, and who moves first
    assert data.planes[left_row, 2].tolist() == [[1, 0, 0], [0, 1, 1]]
    assert data.planes[left_row, 3].max() == 0.0 and data.planes[empty_row, 3].min() == 1.0
    assert data.masks[left_row].tolist() == [True, True, True]
    # the oldest generation leaves once the window is full
    window.add(np.stack([empty]), np.array([[0, 1, 0]], np.float32), np.array([0.0], np.float32))
    assert len(window) == 2 and len(window.parts) == 2


def test_the_window_saves_and_loads_back(tmp_path):
    rng = np.random.default_rng(0)
    window = ReplayWindow(3)
    for size in (5, 7):
        window.add(
            rng.integers(0, 2, (size, 2, 6, 7)).astype(np.uint8),
            rng.random((size, 7)).astype(np.float32),
            rng.random(size).astype(np.float32),
        )
    path = tmp_path / "window.npz"
    window.save(path)
    loaded = ReplayWindow.load(path)
    assert loaded.generations == 3 and len(loaded.parts) == 2
    for mine, theirs in zip(window.parts, loaded.parts):
        assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: no temporary file left


def test_full_planes_match_the_envs_observation():
    from connectx_gym.rules.bitboard import Position, geometry
    from connectx_gym.rules.planes import encode_position, legal_mask

    position = Position(geometry(6, 7, 4))
    for column in (3, 3, 2, 4, 0, 6, 6, 6, 6, 6, 6):
        position.play(column)
    planes = encode_position(position)
    built, masks = full_planes(planes[None, :2].astype(np.uint8))
    np.testing.assert_array_equal(built[0], planes)
    np.testing.assert_array_equal(masks[0], legal_mask(position.geometry, position.mask))


# ---------------------------------------------------------------------------------------- the trainer
AZ = TINY_AZ


def az_config(*overrides: str):
    from connectx_gym.config import load_config

    return load_config(None, [*AZ, *overrides]).resolved()


def weights(path) -> dict[str, np.ndarray]:
    from connectx_gym.runtime.checkpoints import read_network

    return read_network(path)[1]


def test_an_alphazero_run_saves_checkpoints_the_package_reads(tmp_path, capsys):
    from connectx_gym.inference.numpy_policy import load_checkpoint
    from connectx_gym.runtime.checkpoints import read_metadata
    from connectx_gym.training.loop import run

    result = run(az_config(), tmp_path / "run", None)
    assert result.final_model.is_file() and result.steps >= 120 and not result.interrupted
    err = capsys.readouterr().err
    assert "generation 1: 4 games" in err and "leaf evaluations/s" in err
    assert read_metadata(result.final_model)["board"] == {"rows": 6, "columns": 7, "inarow": 4}
    assert load_checkpoint(result.final_model).move is not None  # numpy policy: mcts:, export, play take it
    rows = (tmp_path / "run" / "progress.csv").read_text().splitlines()
    assert "alphazero/selfplay_seconds" in rows[0] and "time/time_elapsed" in rows[0] and len(rows) >= 3
    assert (tmp_path / "run" / "alphazero_state.npz").is_file()


def stop_at(monkeypatch, module, name, calls: int):
    """Make ``module.name`` raise KeyboardInterrupt on its ``calls``-th call (counting from 1)."""
    original = getattr(module, name)
    count = [0]

    def wrapped(*args, **kwargs):
        count[0] += 1
        if count[0] == calls:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


@pytest.mark.parametrize("where", ["selfplay", "fit"])
def test_a_stopped_and_resumed_run_ends_as_an_uninterrupted_one(tmp_path, monkeypatch, capsys, where):
    from connectx_gym.training import alphazero
    from connectx_gym.training.loop import run

    whole = run(az_config(), tmp_path / "whole", None)
    with monkeypatch.context() as patch:
        if where == "selfplay":
            stop_at(patch, alphazero, "play_chunk", 3)  # the first chunk of the second generation
        else:
            stop_at(patch, alphazero.ReplayWindow, "training_set", 2)  # the second generation's fit
        stopped = run(az_config(), tmp_path / "parts", None)
    assert stopped.interrupted and stopped.checkpoint is not None
    capsys.readouterr()
    resumed = run(az_config(), tmp_path / "parts", (stopped.steps, stopped.checkpoint))
    assert resumed.steps == whole.steps
    # the resumed generation's line counts the games played before the stop, and times only its own
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("generation 2:"))
    assert line.startswith("generation 2: 4 games,")
    if where == "fit":  # both chunks were played before the stop: no rate from their evaluations
        assert "(0 leaf evaluations/s; 2 chunks played before the stop)" in line
    else:
        assert "before the stop" not in line
    a, b = weights(whole.final_model), weights(resumed.final_model)
    assert all(np.array_equal(a[name], b[name]) for name in a)


def test_resume_refuses_a_state_saved_with_another_checkpoint(tmp_path):
    from connectx_gym.errors import UserError
    from connectx_gym.training.loop import run

    result = run(az_config(), tmp_path / "run", None)
    with pytest.raises(UserError, match="was saved with the checkpoint of step"):
        run(az_config("train.total_timesteps=400"), tmp_path / "run", (7, result.checkpoint))


@pytest.mark.parametrize(
    "override, message",
    [
        ("alphazero.games=0", "alphazero.games must be an integer >= 1, got 0"),
        ("alphazero.value_target=outcome", "alphazero.value_target must be one of z|q|mix"),
        ("train.algorithm=dqn", "train.algorithm must be one of ppo|alphazero"),
        ("alphazero.window_max=2", "alphazero.window_max must be >= alphazero.window=4, got 2"),
        ("alphazero.learning_rate_final=0", "alphazero.learning_rate_final must be a number > 0"),
        ("alphazero.length_weight=1", "alphazero.length_weight must be a number >= 0 and < 1, got 1"),
    ],
)
def test_bad_alphazero_settings_get_one_line(override, message):
    from connectx_gym.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("|", r"\|")):
        az_config(override)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="the optional ray extra is not installed")
def test_self_play_on_ray_tasks_plays_the_same_games(tmp_path):
    """multiprocessing.backend: ray runs each chunk as a Ray task on a local instance: the same chunks, so
    the same weights as the worker processes."""
    import ray

    from connectx_gym.runtime.ray_cluster import connect
    from connectx_gym.training.loop import run

    started = not ray.is_initialized()
    connect("", num_cpus=2)
    try:
        on_ray = run(az_config("multiprocessing.backend=ray"), tmp_path / "ray", None)
    finally:
        if started:
            ray.shutdown()
    processes = ("multiprocessing.use_multiprocessing=true", "multiprocessing.num_processes=2")
    local = run(az_config(*processes), tmp_path / "local", None)
    a, b = weights(on_ray.final_model), weights(local.final_model)
    assert on_ray.steps == local.steps and all(np.array_equal(a[name], b[name]) for name in a)


def centre_is_good(planes: np.ndarray):
    """A network with even priors whose value says: the player who has the bottom centre cell is winning
    (value -1 for the player to move when the other holds it, +1 when they do)."""
    bottom_centre = planes[:, :2, -1, planes.shape[-1] // 2]
    values = bottom_centre[:, 0] - bottom_centre[:, 1]
    return np.zeros((len(planes), planes.shape[-1])), values


def test_gumbel_improves_the_policy_toward_the_move_the_values_favour():
    from connectx_gym.search.puct_board import SearchBoard
    from connectx_gym.training.gumbel import GumbelSearch

    search = GumbelSearch(SearchBoard(6, 7, 4), centre_is_good)
    roots = [search.root(0, 0) for _ in range(3)]
    search.run(roots, simulations=0)
    found = search.search_roots(roots, 32, [np.random.default_rng(i) for i in range(3)])
    for root, (column, improved, value) in zip(roots, found):
        assert column in root.moves and abs(improved.sum() - 1) < 1e-9
        assert root.moves[int(np.argmax(improved))] == 3  # the centre, though the priors are even
        assert improved.max() > 1 / len(root.moves) + 0.3
        assert 0 < value <= 1  # v_mix: the centre's good value weighs in


def test_gumbel_self_play_targets_are_distributions_and_proofs_stay_exact(small_games):
    settings = SelfPlaySettings(simulations=32, policy_target="gumbel")
    samples = play_games(uniform, SMALL, 6, settings, seed=4, parallel=3)
    assert np.allclose(samples.policy.sum(axis=1), 1, atol=1e-5)
    for stones, q, exact in zip(samples.stones, samples.q, samples.proven):
        if exact:
            assert q == solve(*bitboards(stones))
    again = play_games(uniform, SMALL, 6, settings, seed=4, parallel=3)
    assert np.array_equal(samples.policy, again.policy)


def test_an_alphazero_run_with_gumbel_targets(tmp_path):
    from connectx_gym.training.loop import run

    result = run(az_config("alphazero.policy_target=gumbel", "alphazero.considered=4"), tmp_path / "run", None)
    assert result.final_model.is_file() and result.steps >= 120


def test_the_window_grows_and_the_learning_rate_falls_when_asked():
    fixed = az_config("alphazero.window=3").alphazero
    assert [fixed.window_at(g) for g in range(6)] == [3] * 6 and fixed.learning_rate_at(0.7) == fixed.learning_rate
    section = az_config("alphazero.window=3", "alphazero.window_max=5", "alphazero.learning_rate_final=1e-4").alphazero
    assert [section.window_at(g) for g in range(8)] == [3, 3, 4, 4, 5, 5, 5, 5]
    rates = [section.learning_rate_at(p) for p in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert rates[0] == pytest.approx(1e-3) and rates[2] == pytest.approx(5.5e-4) and rates[-2:] == [1e-4, 1e-4]
    assert rates[0] > rates[1] > rates[2] > rates[3]


def test_a_run_applies_the_window_and_learning_rate_schedules(tmp_path, monkeypatch):
    """Each generation's fit sees the window of its generation and the learning rate of its step."""
    from connectx_gym.training import alphazero
    from connectx_gym.training.loop import run

    seen = []
    original = alphazero.AlphaZeroTrainer._fit

    def spy(trainer, data, generation):
        result = original(trainer, data, generation)
        lr = trainer.model.policy.optimizer.param_groups[0]["lr"]
        seen.append((len(trainer.state.window.parts), lr, trainer.model.num_timesteps))
        return result

    monkeypatch.setattr(alphazero.AlphaZeroTrainer, "_fit", spy)
    config = az_config(
        "alphazero.window=1",
        "alphazero.window_max=2",
        "alphazero.learning_rate_final=1e-5",
        "train.total_timesteps=300",
    )
    run(config, tmp_path / "run", None)
    assert len(seen) >= 3
    # the window passed to the fit is a copy: the state's holds the generations before this one
    assert [parts for parts, _, _ in seen[1:4]] == [1, 1, 2]
    for _, lr, step in seen:
        assert lr == pytest.approx(config.alphazero.learning_rate_at(step / 300))
    assert seen[0][1] > seen[-1][1]
