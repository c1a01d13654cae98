"""Is the network's size what holds the student under its teacher? A supervised probe of capacity.

Positions come from games of a checkpoint's own sampled policy (a few random moves first). With
``--labels mcts`` (the default) each is labelled as the ``mcts`` kickstarting teacher labels it:
``--simulations`` over that checkpoint, its visit distribution and root value (the sampling and
labelling of ``python -m connectx_gym.distil``, ``connectx_gym.training.distillation``). With
``--labels solver`` (6x7 only, the ``[solver]`` extra) the perfect solver labels them: an even
distribution over its best moves and the sign of the position's value: what the network could hold
with perfect targets, the capacity ceiling. Each of ``--networks`` (the trainer's ``BoardCNN``, plain
or with residual blocks, with policy and value heads as SB3 builds them) is fitted from scratch to
those targets for the same number of epochs. Each is then graded on the shipped labelled positions
(greedy perfect/good moves and its value's sign; the shipped positions and their mirror images are
left out of the fitted ones), beside the checkpoint and, with mcts labels, the teacher itself.

    python benchmarks/capacity_probe.py models/pretrained/model.zip [--positions 40000] [--epochs 10]
        [--networks 64,64:128 64,64,64,64:128 64+2:128] [--labels mcts|solver] [--simulations 64] [--seed 0]
        [--num-processes N]

A network is CHANNELS[+BLOCKS]:HEAD_UNITS: ``64,64:128`` is the shipped shape, ``64+2:128`` a 64-wide
convolution then 2 residual blocks (``policy.res_blocks``). If a larger network fits the same
targets better on the held-out shipped positions, the network's size is a limit; if both land
together under the teacher, the data or the compute is. Prints a table, then one JSON object as the
last line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from connectx_gym.evaluation.accuracy import greedy_rates, load_positions, move_and_value_rates
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.runtime.processes import usable_cpu_count
from connectx_gym.training.distillation import (
    Dataset,
    label_chunk,
    label_positions,
    sample_positions,
    solver_labels,
)


def build_net(shape, channels, heads: int, blocks: int = 0):
    """The trainer's ``BoardCNN`` (``blocks`` residual blocks after the convolutions) with a policy and a
    value head of ``heads`` units each, as SB3 builds them."""
    import torch
    from gymnasium import spaces

    from connectx_gym.training.policy import BoardCNN

    features = BoardCNN(spaces.Box(0, 1, shape=shape, dtype=np.float32), channels=channels, res_blocks=blocks)
    width = features.features_dim

    def head(out: int):
        return torch.nn.Sequential(torch.nn.Linear(width, heads), torch.nn.ReLU(), torch.nn.Linear(heads, out))

    return torch.nn.ModuleDict({"features": features, "pi": head(shape[2]), "v": head(1)})


def fit(net, planes, masks, targets, values, epochs: int, seed: int, batch: int = 256) -> float:
    """Adam on cross-entropy to the visit distributions plus squared error to the root values; returns the
    last epoch's mean loss."""
    import torch

    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, m = torch.as_tensor(planes), torch.as_tensor(masks)
    p, v = torch.as_tensor(targets), torch.as_tensor(values)
    rng = np.random.default_rng(seed)
    loss_sum = 0.0
    for _ in range(epochs):
        loss_sum, order = 0.0, torch.as_tensor(rng.permutation(len(x)))
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            features = net["features"](x[idx])
            logits = net["pi"](features).masked_fill(~m[idx], -1e9)
            loss = -(p[idx] * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
            loss = loss + torch.nn.functional.mse_loss(net["v"](features).squeeze(1), v[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
    return loss_sum / len(x)


def grade_net(net, labels) -> dict[str, float]:
    import torch

    planes, masks = labels.planes_and_masks()
    with torch.no_grad():
        features = net["features"](torch.as_tensor(planes))
        logits = net["pi"](features).masked_fill(~torch.as_tensor(masks), -1e9).numpy()
        values = net["v"](features).squeeze(1).numpy()
    return move_and_value_rates(labels, logits.argmax(axis=1).tolist(), values)


def parse_network(text: str) -> tuple[tuple[int, ...], int, int]:
    """``"64,64:128"`` -> ``((64, 64), 0, 128)``, ``"64+2:128"`` -> ``((64,), 2, 128)``; ValueError unless
    every number is positive (the blocks may be 0)."""
    layers, heads = text.split(":")
    channels, _, blocks = layers.partition("+")
    size = tuple(int(c) for c in channels.split(","))
    count = int(blocks) if blocks else 0
    if not size or min(size) < 1 or int(heads) < 1 or count < 0:
        raise ValueError(text)
    return size, count, int(heads)


def solver_targets(positions, processes: int) -> tuple[np.ndarray, np.ndarray]:
    """The perfect solver's labels (``solver_labels``), with a progress line."""
    clock = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"\rsolved {done}/{total} in {time.perf_counter() - clock:.0f} s", end="", flush=True)

    labels = solver_labels(positions, processes, progress)
    print()
    return labels


def held_out(positions, labels):
    """``positions`` without the shipped labelled ones and their mirror images."""

    def boards(position):
        board = np.asarray(position.to_kaggle()).reshape(position.geometry.rows, -1)
        return board.tobytes(), board[:, ::-1].tobytes()

    shipped = {key for position in labels.positions() for key in boards(position)}
    return [p for p in positions if boards(p)[0] not in shipped]


def describe(size, blocks: int, heads: int) -> str:
    residual = f" + {blocks} residual block{'s' if blocks > 1 else ''}" if blocks else ""
    return f"CNN {list(size)}{residual}, heads {heads}"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--positions", type=int, default=40000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--networks",
        nargs="+",
        default=["64,64:128", "64,64,64,64:128", "128,128,128:256"],
        help="each network as CHANNELS[+BLOCKS]:HEAD_UNITS (default: the shipped 64,64:128, a deeper and a wider one)",
    )
    parser.add_argument("--labels", choices=["mcts", "solver"], default="mcts")
    parser.add_argument("--simulations", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--num-processes", type=int, default=None, help="processes labelling positions (default: usable cores)"
    )
    args = parser.parse_args()
    try:
        networks = [parse_network(text) for text in args.networks]
    except ValueError:
        parser.error(
            f"--networks takes CHANNELS[+BLOCKS]:HEAD_UNITS such as 64,64:128 or 64+2:128, not {args.networks}"
        )
    if args.positions < 1 or args.epochs < 1 or args.simulations < 1:
        parser.error("--positions, --epochs and --simulations must be positive")
    processes = usable_cpu_count() if args.num_processes is None else args.num_processes
    if processes < 1:
        parser.error(f"--num-processes must be positive, got {processes}")
    torch.set_num_threads(2)
    policy, labels = load_checkpoint(args.checkpoint), load_positions()
    rows, clock = [], time.perf_counter()
    positions = held_out(sample_positions(policy, args.positions, args.seed), labels)
    if args.labels == "solver":
        targets, values = solver_targets(positions, processes)
        source = "the perfect solver"
    else:
        targets, values = label_positions(args.checkpoint, positions, args.simulations, processes)
        source = f"{args.simulations} simulations"
    data = Dataset.of(positions, targets, values)
    print(f"{len(positions)} positions labelled by {source} in {time.perf_counter() - clock:.0f} s", flush=True)
    rows.append({"network": "the checkpoint itself", **greedy_rates(policy, labels)})
    if args.labels == "mcts":
        teacher = label_chunk((args.checkpoint, args.simulations, labels.positions()))
        moves = [int(np.argmax(p)) for p, _ in teacher]
        rows.append(
            {
                "network": f"its {args.simulations}-simulation teacher",
                **move_and_value_rates(labels, moves, [v for _, v in teacher]),
            }
        )
    for size, blocks, heads in networks:
        torch.manual_seed(args.seed)  # the initial weights too: the same seed gives the same table
        net = build_net(data.planes.shape[1:], size, heads, blocks)
        params = sum(p.numel() for p in net.parameters())
        start = time.perf_counter()
        loss = fit(net, data.planes, data.masks, data.targets, data.values, args.epochs, args.seed)
        rows.append(
            {
                "network": f"{describe(size, blocks, heads)}: {params / 1e3:.0f}k parameters",
                "loss": round(loss, 4),
                "fit_seconds": round(time.perf_counter() - start, 1),
                **grade_net(net, labels),
            }
        )
        print(f"fitted {rows[-1]['network']} in {rows[-1]['fit_seconds']:.0f} s", flush=True)
    print(f"{'network':<64} perfect   good   value decided   value lost")
    for row in rows:
        print(
            f"{row['network']:<64} {100 * row['perfect']:6.1f}% {100 * row['good']:6.1f}% "
            f"{100 * row['value_decided']:12.1f}% {100 * row['value_lost']:11.1f}%"
        )
    print(
        json.dumps(
            {
                "checkpoint": args.checkpoint,
                "labels": args.labels,
                "positions": len(positions),
                "epochs": args.epochs,
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
