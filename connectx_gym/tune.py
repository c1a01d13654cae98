"""``python -m connectx_gym.tune``: hyperparameter sweeps of the trainer with Ray Tune.

Each trial is a :func:`connectx_gym.training.loop.run` of its own config (the base config, plus the
sweep's fixed overrides, plus the trial's sampled values) in its own run directory, reporting to
Tune after every evaluation; Tune samples the trials, runs as many at once as the cluster's CPUs
allow, and (with ASHA) stops weak trials early. At the end the sweep prints a results table,
writes it as ``results.csv`` and names the best trial's run directory, whose ``best_model.zip``
or ``final_model.zip`` exports like any other run's.

The sweep file (``configs/tune.yaml`` is a commented example)::

    name: tune-ppo                      # sweep name: everything goes under <train.output_dir>/<name>/
    base_config: configs/default.yaml   # training config the trials start from (relative to the current
                                        # directory); omitted: configs/default.yaml if present, else defaults
    overrides:                          # 'section.key: value' fixed for every trial
      train.total_timesteps: 200000
      train.eval_every: 20000           # must be > 0: trials report to Tune once per evaluation
    search_space:                       # 'section.key: {distribution: arguments}'
      ppo.learning_rate: {loguniform: [1.0e-4, 1.0e-3]}
      ppo.ent_coef: {choice: [0.0, 0.005, 0.01]}
      ppo.n_epochs: {randint: [2, 6]}   # integers 2..6, both bounds included (unlike tune.randint)
    num_samples: 8                      # samples drawn (times the number of grid combinations)
    metric: mean_win_rate               # or win_rate/<an eval opponent>, steps_per_s
    mode: max                           # or min
    scheduler: {type: asha, grace_period: 2, reduction_factor: 2}   # or {type: fifo}
    resources_per_trial: {cpu: 1, gpu: 0}
    max_concurrent_trials: null         # null: as many as the resources allow
    seed: 0                             # seeds the sampling; null: different trials every time

Distributions: ``choice: [v, ...]``, ``grid: [v, ...]`` (every value, for every sample),
``uniform: [low, high]``, ``quniform: [low, high, q]``, ``loguniform: [low, high]`` (floats), and
``randint: [low, high]``, ``lograndint: [low, high]`` (integers, both bounds included). ``overrides``
and ``search_space`` also accept the nested form ``ppo: {learning_rate: ...}``.

Everything is checked before Ray starts: every key is a real config key (with a did-you-mean hint),
every value a choice or grid can take and both ends of every range (and their combinations) make
a valid config, the metric is one that the trials report, and evaluation is on.

Trials:

* run in ``<train.output_dir>/<name>/<trial name>/`` (``trial_00000``, ...) with that directory's
  ``config.yaml``, ``progress.csv``, TensorBoard logs, checkpoints, ``best_model.zip``,
  ``final_model.zip`` (not for trials ASHA stopped early) and ``train.log`` (the trial's output);
  such a directory is a normal run directory: evaluate it, export its models, or continue it with
  ``python -m connectx_gym.train --resume``. Tune's own files go to ``<output_dir>/<name>/ray_tune/``;
* all train with the config's ``train.seed``, so they differ only by their sampled values; to
  repeat configs over seeds, search ``train.seed: {grid: [0, 1, 2]}``;
* run in the directory the sweep was started from, so relative paths (agent files) work as for
  ``train`` (on a multi-node cluster, that directory and ``train.output_dir`` must be shared by
  every node at the same path);
* step their envs in-process (``multiprocessing.use_multiprocessing=false``) whatever the base
  config says, unless the sweep's ``overrides`` set ``multiprocessing.use_multiprocessing: true``:
  then each trial reserves ``multiprocessing.num_processes`` CPUs (which must be a number) and the
  workers start with ``forkserver`` or ``spawn`` (``fork`` is refused inside a Ray worker).
  ``multiprocessing.backend: ray`` places the chunk actors in the trial's placement group.

Scheduling and results: ``scheduler.grace_period`` counts reports (evaluations), and ASHA's rungs
sit below a trial's last evaluation, so it never stops a trial while it saves its final model.
The sweep prints a line per started and finished trial (the trainer's output is in each trial's
``train.log``), then the table, best first: sorted by the metric's last reported value (ties: its
best value); ``status`` is ``done``, ``stopped`` (by ASHA), ``error`` or ``interrupted`` (Ctrl-C
stops the running trials, and the sweep still writes the table of what ran).

``--address`` (or the base config's ``ray.address``) joins a Ray cluster; without one the sweep
starts a local instance on this machine's usable cores. ``--set key=value`` changes the sweep file
(``--set num_samples=2``, ``--set overrides.train.total_timesteps=40000``, ``--set
scheduler.type=fifo``). A sweep directory that already exists is an error (choose another name).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from connectx_gym.cli import ArgumentParser, run_command
from connectx_gym.errors import UserError
from connectx_gym.sweeps.driver import WHAT, run_sweep
from connectx_gym.sweeps.plan import load_sweep

DEFAULT_SWEEP_FILE = Path("configs") / "tune.yaml"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog=WHAT,
        description="Hyperparameter sweep of the MaskablePPO trainer with Ray Tune (needs the ray extra).",
    )
    parser.add_argument(
        "--config",
        default=str(DEFAULT_SWEEP_FILE),
        help=f"sweep file (default: {DEFAULT_SWEEP_FILE}); its format is in the module docstring",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join: auto, host:port or ray://host:port (default: the base config's "
        "ray.address; none: a local instance on this machine's cores)",
    )
    parser.add_argument("--num-samples", type=int, default=None, metavar="N", help="replace the file's num_samples")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change the sweep file (repeatable): num_samples=4, overrides.train.seed=1, "
        "search_space.ppo.n_epochs={choice: [2, 4]}, scheduler.type=fifo",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m connectx_gym.tune``: exit 0 after a sweep, 2 on bad input, 1 if no trial reported."""

    def command() -> int:
        args = parse_args(argv)
        sweep = load_sweep(args.config, args.sets, args.num_samples, args.address)
        if sweep.sweep_dir.exists():
            raise UserError(
                f"sweep directory '{sweep.sweep_dir}' already exists; choose another name (--set name=...) or remove it"
            )
        return run_sweep(sweep)

    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
