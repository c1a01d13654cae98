"""Ratings with error bars: the Wilson score interval of a win rate, and Bradley-Terry (Elo) ratings
fitted by maximum likelihood with intervals from the Fisher information (numpy only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: two-sided 95% normal quantile
Z95 = 1.959963984540054
ELO_PER_NATURAL_UNIT = 400.0 / math.log(10.0)


def wilson_interval(successes: float, trials: int, z: float = Z95) -> tuple[float, float]:
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
    """Bradley-Terry ratings on the Elo scale (mean 0, or the ``anchor`` player at 0), with 95% intervals.

    :param anchor: the index of the player fixed at 0 Elo, or ``None`` when the mean is 0
    """

    elo: np.ndarray
    low: np.ndarray
    high: np.ndarray
    stderr: np.ndarray
    iterations: int
    anchor: int | None = None


def bradley_terry(
    scores: np.ndarray,
    games: np.ndarray,
    prior_draws: float = 1.0,
    tol: float = 1e-10,
    max_iter: int = 200,
    anchor: int | None = None,
) -> Ratings:
    """Maximum-likelihood Bradley-Terry ratings, by Newton's method on the concave log-likelihood.

    Player ``i`` beats ``j`` with probability ``1 / (1 + exp(theta_j - theta_i))``; a draw counts as
    half a win for each side. ``prior_draws`` virtual draws of every player against a fixed player
    of strength 0 (a weak prior) keep the ratings finite when someone wins or loses every game;
    ``0`` gives the plain maximum-likelihood estimate, which exists only when every player has
    scored against some player of every group it trails. Ratings are reported on the Elo scale
    (``400 / ln 10`` per unit) and anchored so their mean is 0, or so that player ``anchor`` is at
    exactly 0 (an Elo ladder's fixed point). The intervals are ``1.96`` standard errors from the inverse
    observed Fisher information of the anchored ratings: with a mean anchor of ``theta_i - mean(theta)``,
    with a player anchor of the difference ``theta_i - theta_anchor`` (so the anchor's own interval is
    ``[0, 0]`` and every other interval is relative to it, wider than a mean-anchored one).

    :param scores: ``scores[i, j]`` = points of ``i`` against ``j`` (wins + draws / 2)
    :param games: ``games[i, j]`` = games between ``i`` and ``j`` (symmetric, zero diagonal)
    :param anchor: index of the player fixed at 0 Elo; ``None``: the mean rating is 0
    :raises ValueError: if the plain MLE (``prior_draws=0``) does not exist, or ``anchor`` is no player
    """
    scores = np.asarray(scores, dtype=float)
    games = np.asarray(games, dtype=float)
    _check_matrices(scores, games, prior_draws)
    n = len(scores)
    if anchor is not None and not 0 <= anchor < n:
        raise ValueError(f"anchor must be a player index in 0..{n - 1}, got {anchor}")
    model = _BradleyTerry(scores, games, prior_draws)
    theta, iterations = model.maximise(tol, max_iter)
    _, information = model.gradient_and_information(theta)
    if anchor is None:
        centring = np.eye(n) - np.ones((n, n)) / n  # rows: theta_i - mean(theta)
    else:
        centring = np.eye(n)
        centring[:, anchor] -= 1.0  # rows: theta_i - theta_anchor
    covariance = np.linalg.pinv(information) if prior_draws == 0 else np.linalg.inv(information)
    covariance = centring @ covariance @ centring.T
    anchored = (centring @ theta) * ELO_PER_NATURAL_UNIT
    stderr = np.sqrt(np.clip(np.diag(covariance), 0.0, None)) * ELO_PER_NATURAL_UNIT
    if anchor is not None:
        anchored[anchor], stderr[anchor] = 0.0, 0.0  # exactly, not up to rounding
    return Ratings(
        elo=anchored,
        low=anchored - Z95 * stderr,
        high=anchored + Z95 * stderr,
        stderr=stderr,
        iterations=iterations,
        anchor=anchor,
    )


def _check_matrices(scores: np.ndarray, games: np.ndarray, prior_draws: float) -> None:
    n = len(scores)
    if scores.shape != (n, n) or games.shape != (n, n):
        raise ValueError("scores and games must be square matrices of the same size")
    if not np.allclose(games, games.T) or not np.allclose(scores + scores.T, games):
        raise ValueError("games must be symmetric and scores[i, j] + scores[j, i] must equal games[i, j]")
    if prior_draws < 0:
        raise ValueError(f"prior_draws must be >= 0, got {prior_draws}")
    if prior_draws == 0:
        _check_mle_exists(scores, games)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


class _BradleyTerry:
    """The Bradley-Terry log-likelihood of one results matrix, its gradient and Fisher information."""

    def __init__(self, scores: np.ndarray, games: np.ndarray, prior_draws: float) -> None:
        self.scores, self.games, self.prior_draws = scores, games, prior_draws
        self.totals = scores.sum(axis=1) + prior_draws / 2.0

    def log_likelihood(self, theta: np.ndarray) -> float:
        diff = theta[:, None] - theta[None, :]
        value = float(np.sum(self.scores * _log_sigmoid(diff)))
        return value + self.prior_draws / 2.0 * float(np.sum(_log_sigmoid(theta) + _log_sigmoid(-theta)))

    def gradient_and_information(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
        own = 1.0 / (1.0 + np.exp(-theta))
        gradient = self.totals - np.sum(self.games * p, axis=1) - self.prior_draws * own
        weights = self.games * p * p.T
        information = np.diag(weights.sum(axis=1) + self.prior_draws * own * (1.0 - own)) - weights
        return gradient, information

    def maximise(self, tol: float, max_iter: int) -> tuple[np.ndarray, int]:
        """Newton's method with step halving from ``theta = 0``; the maximiser and the iterations used."""
        n = len(self.scores)
        theta = np.zeros(n)
        ones = np.ones((n, n)) / n
        iterations = 0
        current = self.log_likelihood(theta)
        while iterations < max_iter:
            iterations += 1
            gradient, information = self.gradient_and_information(theta)
            # without a prior the likelihood is flat along theta + c: keep the mean fixed
            system = information + ones if self.prior_draws == 0 else information
            step = np.linalg.solve(system, gradient)
            scale = 1.0
            while True:
                candidate = theta + scale * step
                value = self.log_likelihood(candidate)
                if value >= current - 1e-12 or scale < 1e-8:
                    break
                scale /= 2.0
            theta, previous, current = candidate, current, value
            if np.max(np.abs(scale * step)) < tol or abs(current - previous) < tol * 1e-3:
                break
        return theta, iterations


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
