"""Tests of connectx_gym.config: defaults, YAML files, overrides, validation messages, resolution."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from connectx_gym import config as config_module
from connectx_gym.config import (
    SECTIONS,
    TEACHER_KINDS,
    AlphaZeroConfig,
    Config,
    CurriculumConfig,
    EnvConfig,
    KickstartConfig,
    LoggingConfig,
    MultiprocessingConfig,
    PolicyConfig,
    PPOConfig,
    RayConfig,
    SelfPlayConfig,
    TrainConfig,
    config_from_dict,
    config_keys,
    config_reference_markdown,
    config_to_dict,
    default_config_yaml,
    load_config,
    save_config,
)
from connectx_gym.config import training as config_training
from connectx_gym.errors import ConfigError, UserError
from connectx_gym.runtime.processes import usable_cpu_count
from connectx_gym.training.builders import check_init_from

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"

# The defaults: the trainer brief's values, with the tuned recipe (opponent mixture, curriculum,
# run length and intervals) replacing them where the recipe differs.
SPEC_DEFAULTS = {
    "env": dict(
        rows=6,
        columns=7,
        inarow=4,
        opponent={
            "random": 0.1,
            "negamax": 0.2,
            "alphabeta:1:0.2": 0.2,
            "alphabeta:2:0.2": 0.2,
            "alphabeta:3:0.1": 0.15,
            "alphabeta:4:0.1": 0.15,
        },
        agent_seat="random",
        reward_win=1.0,
        reward_loss=-1.0,
        reward_draw=0.0,
        illegal_action="lose",
    ),
    "multiprocessing": dict(
        use_multiprocessing=True,
        backend="chunked",
        num_processes="auto",
        parallel_episodes=64,
        chunk_size=None,
        start_method="forkserver",
    ),
    "ppo": dict(
        n_steps=128,
        batch_size=1024,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.01,
        vf_coef=0.5,
        clip_range=0.2,
        max_grad_norm=0.5,
        target_kl=None,
    ),
    "policy": dict(
        features="cnn", cnn_channels=[64, 64], kernel_size=3, res_blocks=0, net_arch=[128], activation="relu"
    ),
    "train": dict(
        total_timesteps=3_000_000,
        seed=0,
        run_name=None,
        output_dir="models",
        checkpoint_every=200_000,
        keep_checkpoints=3,
        eval_every=200_000,
        eval_games=100,
        eval_opponents=["random", "negamax", "alphabeta:2"],
        eval_accuracy=True,
        eval_openings=True,
        algorithm="ppo",
        device="cpu",
        overlap=False,
        init_from=None,
        mirror=False,
    ),
    "selfplay": dict(snapshot_every=200_000, pool_size=20, latest_probability=0.5, prioritized=True),
    "curriculum": dict(stages=[], window=2000),
    "kickstart": dict(
        coef=2.0,
        decay_steps=3_000_000,
        schedule="linear",
        teacher=dict(kind="alphabeta", depth=4, temperature=0.1),
    ),
    "alphazero": dict(
        games=256,
        simulations=64,
        parallel_games=32,
        c_puct=2.0,
        leaf_batch=8,
        fpu_reduction=0.2,
        noise_alpha=1.0,
        noise_fraction=0.25,
        temperature_moves=8,
        policy_target="visits",
        considered=16,
        value_target="mix",
        length_weight=0.0,
        window=4,
        window_max=None,
        mirror=True,
        epochs=2,
        batch_size=256,
        learning_rate=0.001,
        learning_rate_final=None,
    ),
    "ray": dict(address=None, num_cpus_per_worker=1.0),
    "logging": dict(tensorboard=True, csv=True, progress_bar=True, verbose=0),
}


def error_of(overrides=(), path=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message, "errors must be one line"
    return message


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and shipped files ------------------------------------------------------------------


def test_defaults_are_the_specified_values():
    assert config_to_dict(load_config()) == SPEC_DEFAULTS
    assert load_config() == Config()


def test_sections_and_keys_are_complete():
    assert list(SECTIONS) == list(SPEC_DEFAULTS)
    assert [f.name for f in dataclasses.fields(Config)] == list(SPEC_DEFAULTS)
    assert [key for key in config_keys() if key.count(".") == 1] == [
        f"{s}.{k}" for s, keys in SPEC_DEFAULTS.items() for k in keys
    ]
    # and the keys of the tagged teacher: each key of any kind, once
    nested = [key.split(".", 2)[2] for key in config_keys() if key.count(".") == 2]
    assert nested == list(dict.fromkeys(name for cls in TEACHER_KINDS.values() for name in cls.keys()))


def test_every_field_has_one_line_help():
    for cls in SECTIONS.values():
        for f in dataclasses.fields(cls):
            help_text = f.metadata.get("help")
            assert help_text and "\n" not in help_text, f"{cls.__name__}.{f.name} lacks a one-line help"


def test_default_yaml_equals_defaults_and_is_generated():
    assert load_config(CONFIGS / "default.yaml") == Config()
    text = (CONFIGS / "default.yaml").read_text(encoding="utf-8")
    assert text == default_config_yaml(), "regenerate: python -m connectx_gym.config > configs/default.yaml"
    raw = yaml.safe_load(text)
    assert {f"{s}.{k}" for s, keys in raw.items() for k in keys} == {k for k in config_keys() if k.count(".") == 1}
    assert list(raw["kickstart"]["teacher"]) == ["kind", "depth", "temperature"]  # the default kind's keys


def test_quick_yaml_loads_and_is_small():
    cfg = load_config(CONFIGS / "quick.yaml")
    mp = cfg.resolved().multiprocessing
    assert (mp.num_processes, mp.chunk_size, mp.parallel_episodes) == (2, 4, 8)
    assert cfg.ppo.n_steps == 64 and cfg.ppo.batch_size == 256 and cfg.ppo.n_epochs == 1
    assert cfg.train.total_timesteps == 4096
    assert cfg.policy.cnn_channels == (16, 16) and cfg.policy.net_arch == (64,)
    assert cfg.train.eval_opponents == ("random",) and cfg.train.eval_games == 10


def test_mcts_5x6_yaml_is_expert_iteration_on_a_board_without_a_solver():
    config = load_config(CONFIGS / "mcts-5x6.yaml").resolved()
    assert (config.env.rows, config.env.columns, config.env.inarow) == (5, 6, 4)
    assert (
        config.kickstart.teacher.kind == "mcts"
        and config.kickstart.teacher.value_coef > 0
        and config.kickstart.coef > 0
    )
    assert config.kickstart.schedule == "constant" and config.train.init_from is None  # from scratch
    assert config.train.checkpoint_every < config.train.total_timesteps


def test_strong_yaml_continues_alphazeros_loop_from_the_tracked_continued_model_with_a_cheaper_search():
    strong = load_config(CONFIGS / "strong.yaml")
    scratch = load_config(CONFIGS / "alphazero.yaml")
    continued = load_config(ROOT / "models" / "pretrained" / "continued-run" / "config.yaml")
    assert strong.train.algorithm == "alphazero" and strong.env == scratch.env and strong.policy == scratch.policy
    # the same loop with half the simulations, fitted more gently than from scratch
    assert strong.alphazero.simulations == scratch.alphazero.simulations // 2
    assert strong.alphazero.value_target == scratch.alphazero.value_target
    assert strong.alphazero.window == scratch.alphazero.window
    assert strong.alphazero.learning_rate < scratch.alphazero.learning_rate
    assert strong.alphazero.learning_rate_final < strong.alphazero.learning_rate
    # it continues from a tracked checkpoint, which a fresh clone has and the trainer accepts, and that
    # checkpoint's own run continued the from-scratch recipe's tracked model
    start = Path(strong.train.init_from)
    assert start == Path("models/pretrained/continued.zip") and (ROOT / start).is_file()
    check_init_from(dataclasses.replace(strong, train=dataclasses.replace(strong.train, init_from=str(ROOT / start))))
    assert strong.train.checkpoint_every < strong.train.total_timesteps
    assert Path(continued.train.init_from) == Path("models/pretrained/alphazero.zip")
    assert continued.policy == strong.policy and continued.alphazero.simulations == scratch.alphazero.simulations
    # the shipped model's resolved config is this recipe's (but for where the run was written)
    shipped = load_config(ROOT / "models" / "pretrained" / "config.yaml")
    assert shipped.alphazero == strong.resolved().alphazero and shipped.policy == strong.policy
    assert shipped.train.init_from == strong.train.init_from


def test_config_is_frozen_and_hashable():
    cfg = load_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.ppo.n_steps = 3  # type: ignore[misc]
    assert isinstance(cfg.policy.cnn_channels, tuple)
    assert hash(cfg) == hash(load_config())
    with pytest.raises(TypeError, match="read-only"):
        cfg.env.opponent["negamax"] = 1.0
    assert pickle.loads(pickle.dumps(cfg)) == cfg


# --- validation: one rule per case, the message names the key, the value and the rule -----------

BAD = [
    ("env.rows=-3", "env.rows must be an integer >= 1, got -3"),
    ("env.columns=0", "env.columns must be an integer >= 1, got 0"),
    ("env.inarow=2.5", "env.inarow must be an integer >= 1, got 2.5"),
    ("env.rows=true", "env.rows must be an integer >= 1, got true"),
    ("env.agent_seat=middle", "env.agent_seat must be one of first|second|random, got 'middle'"),
    ("env.illegal_action=ignore", "env.illegal_action must be one of lose|raise, got 'ignore'"),
    ("env.reward_win=big", "env.reward_win must be a number, got 'big'"),
    ("env.reward_loss=.nan", "env.reward_loss must be a number, got nan"),
    ("env.opponent=3", "env.opponent must be a string or a mapping, got 3"),
    (
        "multiprocessing.use_multiprocessing=1",
        "multiprocessing.use_multiprocessing must be a boolean (true|false), got 1",
    ),
    (
        "multiprocessing.backend=rays",
        "multiprocessing.backend must be one of chunked|ray|sb3_subproc|sb3_dummy, got 'rays'",
    ),
    ("multiprocessing.num_processes=0", "multiprocessing.num_processes must be an integer >= 1 or 'auto', got 0"),
    (
        "multiprocessing.num_processes=many",
        "multiprocessing.num_processes must be an integer >= 1 or 'auto', got 'many'",
    ),
    ("multiprocessing.parallel_episodes=0", "multiprocessing.parallel_episodes must be an integer >= 1, got 0"),
    ("multiprocessing.chunk_size=-1", "multiprocessing.chunk_size must be an integer >= 1 or null, got -1"),
    (
        "multiprocessing.start_method=thread",
        "multiprocessing.start_method must be one of forkserver|spawn|fork, got 'thread'",
    ),
    ("ppo.n_steps=0", "ppo.n_steps must be an integer >= 1, got 0"),
    ("ppo.batch_size=1", "ppo.batch_size must be an integer > 1, got 1"),
    ("ppo.n_epochs=0", "ppo.n_epochs must be an integer >= 1, got 0"),
    ("ppo.learning_rate=0", "ppo.learning_rate must be a number > 0, got 0"),
    ("ppo.learning_rate=-1e-4", "ppo.learning_rate must be a number > 0, got '-1e-4'"),
    ("ppo.gamma=0", "ppo.gamma must be a number > 0 and <= 1, got 0"),
    ("ppo.gamma=1.01", "ppo.gamma must be a number > 0 and <= 1, got 1.01"),
    ("ppo.gae_lambda=-0.1", "ppo.gae_lambda must be a number >= 0 and <= 1, got -0.1"),
    ("ppo.gae_lambda=1.5", "ppo.gae_lambda must be a number >= 0 and <= 1, got 1.5"),
    ("ppo.ent_coef=-0.01", "ppo.ent_coef must be a number >= 0, got -0.01"),
    ("ppo.vf_coef=-1", "ppo.vf_coef must be a number >= 0, got -1"),
    ("ppo.clip_range=0", "ppo.clip_range must be a number > 0, got 0"),
    ("ppo.max_grad_norm=0", "ppo.max_grad_norm must be a number > 0, got 0"),
    ("ppo.target_kl=0", "ppo.target_kl must be a number > 0 or null, got 0"),
    ("policy.features=rnn", "policy.features must be one of cnn|mlp, got 'rnn'"),
    ("policy.cnn_channels=[]", "policy.cnn_channels must be a non-empty list of integers >= 1, got []"),
    ("policy.cnn_channels=[32,0]", "policy.cnn_channels must be a non-empty list of integers >= 1, got [32, 0]"),
    ("policy.cnn_channels=32", "policy.cnn_channels must be a non-empty list of integers >= 1, got 32"),
    ("policy.kernel_size=4", "policy.kernel_size must be an odd integer >= 1, got 4"),
    ("policy.kernel_size=-1", "policy.kernel_size must be an odd integer >= 1, got -1"),
    ("policy.res_blocks=-1", "policy.res_blocks must be an integer >= 0, got -1"),
    ("policy.net_arch=[64,true]", "policy.net_arch must be a list of integers >= 1, got [64, true]"),
    ("policy.activation=sigmoid", "policy.activation must be one of relu|tanh|gelu, got 'sigmoid'"),
    ("train.total_timesteps=0", "train.total_timesteps must be an integer >= 1, got 0"),
    ("train.seed=-1", "train.seed must be an integer >= 0, got -1"),
    ("train.run_name=a/b", "train.run_name must be a directory name (no '/') or null, got 'a/b'"),
    ("train.run_name=7", "train.run_name must be a directory name (no '/') or null, got 7"),
    ("train.output_dir=''", "train.output_dir must be a non-empty string, got ''"),
    ("train.checkpoint_every=0", "train.checkpoint_every must be an integer >= 1, got 0"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints must be an integer >= 1, got 0"),
    ("train.eval_every=-1", "train.eval_every must be an integer >= 0, got -1"),
    ("train.eval_games=3", "train.eval_games must be an even integer >= 2, got 3"),
    ("train.eval_games=0", "train.eval_games must be an even integer >= 2, got 0"),
    ("train.eval_opponents=random", "train.eval_opponents must be a list of strings, got 'random'"),
    ("train.device=tpu", "train.device must be one of cpu|cuda|auto, got 'tpu'"),
    ("logging.tensorboard=maybe", "logging.tensorboard must be a boolean (true|false), got 'maybe'"),
    ("logging.verbose=3", "logging.verbose must be one of 0|1|2, got 3"),
    ("logging.verbose=true", "logging.verbose must be one of 0|1|2, got true"),
]


@pytest.mark.parametrize("override, message", BAD, ids=[o for o, _ in BAD])
def test_bad_value_is_rejected_with_key_value_and_rule(override, message):
    assert error_of([override]) == message


def test_batch_size_must_divide_rollout():
    assert error_of(["ppo.batch_size=1000"]) == (
        "ppo.batch_size=1000 must divide ppo.n_steps × multiprocessing.parallel_episodes = 128 × 64 = 8192"
    )
    assert load_config(overrides=["ppo.batch_size=8192"]).ppo.batch_size == 8192
    assert "= 10 × 3 = 30" in error_of(
        ["ppo.n_steps=10", "multiprocessing.parallel_episodes=3", "multiprocessing.num_processes=1"]
    )


def test_eval_opponents_required_unless_eval_disabled():
    message = error_of(["train.eval_opponents=[]"])
    assert "train.eval_opponents=[]" in message and "train.eval_every=200000" in message
    assert load_config(overrides=["train.eval_opponents=[]", "train.eval_every=0"]).train.eval_opponents == ()


def test_direct_construction_validates_too():
    with pytest.raises(ConfigError, match=r"^ppo\.gamma must be"):
        PPOConfig(gamma=2.0)
    with pytest.raises(ConfigError, match=r"^ppo\.batch_size=100 must divide"):
        dataclasses.replace(Config(), ppo=PPOConfig(batch_size=100))
    with pytest.raises(ConfigError, match="ppo must be a PPOConfig"):
        Config(ppo={"n_steps": 4})  # type: ignore[arg-type]


def test_config_error_is_a_user_error():
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)


# --- type coercion -------------------------------------------------------------------------------


def test_exponent_strings_and_ints_become_floats():
    cfg = load_config(overrides=["ppo.learning_rate=1e-4", "ppo.gamma=1", "env.reward_win=2"])
    assert cfg.ppo.learning_rate == 1e-4 and type(cfg.ppo.learning_rate) is float
    assert cfg.ppo.gamma == 1.0 and type(cfg.ppo.gamma) is float
    assert type(cfg.env.reward_win) is float
    assert load_config(overrides=["ppo.target_kl=1e-2"]).ppo.target_kl == 0.01


def test_integral_numbers_are_accepted_for_int_fields_but_bools_are_not():
    assert load_config(overrides=["train.total_timesteps=1e6"]).train.total_timesteps == 1_000_000
    assert load_config(overrides=["train.total_timesteps=1_000"]).train.total_timesteps == 1000
    assert type(load_config(overrides=["train.total_timesteps=2.0e+6"]).train.total_timesteps) is int
    assert error_of(["train.seed=false"]) == "train.seed must be an integer >= 0, got false"


def test_lists_become_tuples_and_back():
    cfg = load_config(overrides=["policy.cnn_channels=[32, 32, 16]", "train.eval_opponents=[random]"])
    assert cfg.policy.cnn_channels == (32, 32, 16)
    assert config_to_dict(cfg)["policy"]["cnn_channels"] == [32, 32, 16]
    assert config_to_dict(cfg)["train"]["eval_opponents"] == ["random"]


# --- overrides -----------------------------------------------------------------------------------


def test_overrides_apply_on_top_of_file_and_later_wins(tmp_path):
    path = write(tmp_path, "ppo:\n  n_epochs: 2\ntrain:\n  run_name: fromfile\n")
    cfg = load_config(path, ["ppo.n_epochs=3", "train.run_name=null", "ppo.n_epochs=5", "policy.net_arch=[]"])
    assert cfg.ppo.n_epochs == 5
    assert cfg.train.run_name is None
    assert cfg.policy.net_arch == ()
    assert load_config(path).train.run_name == "fromfile"


def test_override_value_may_contain_equals_and_spaces():
    assert load_config(overrides=["train.run_name = a=b"]).train.run_name == "a=b"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("ppo.learning_rate", "bad override 'ppo.learning_rate': expected section.key=value"),
        ("learning_rate=1", "bad override 'learning_rate=1': expected section.key=value"),
        ("=1", "bad override '=1': expected section.key=value"),
        ("ppo.=1", "bad override 'ppo.=1': expected section.key=value"),
        (
            "ppo.learnig_rate=1e-4",
            "bad override 'ppo.learnig_rate=1e-4': unknown key 'ppo.learnig_rate' (did you mean 'learning_rate'?)",
        ),
        ("trian.seed=1", "bad override 'trian.seed=1': unknown section 'trian' (did you mean 'train'?)"),
        ("ppo.seed=1", "bad override 'ppo.seed=1': unknown key 'ppo.seed' (did you mean 'train.seed'?)"),
        ("ppo.zzz=1", "bad override 'ppo.zzz=1': unknown key 'ppo.zzz'"),
        ("policy.net_arch=[64", "bad override 'policy.net_arch=[64': value is not valid YAML"),
    ],
)
def test_bad_override_names_the_override(override, expected):
    assert error_of([override]).startswith(expected)


def test_a_single_string_override_is_not_split_into_characters():
    assert load_config(overrides="ppo.n_epochs=2").ppo.n_epochs == 2  # type: ignore[arg-type]


# --- files ---------------------------------------------------------------------------------------


def test_partial_file_fills_defaults(tmp_path):
    path = write(tmp_path, "env:\n  rows: 5\npolicy:\nlogging: {}\n")
    cfg = load_config(path)
    assert cfg.env.rows == 5
    assert dataclasses.replace(cfg, env=EnvConfig()) == Config()


@pytest.mark.parametrize("text", ["", "# nothing\n", "\n\n  \n"])
def test_empty_file_is_refused_naming_it(tmp_path, text):
    path = write(tmp_path, text)
    assert error_of(path=path) == (
        f"config file '{path}' is empty (no sections, only blanks or comments); give at least one section, "
        "e.g. 'train: {total_timesteps: 100000}', or leave out --config to use every default"
    )
    assert load_config(None) == Config()  # no file at all: every default


@pytest.mark.parametrize(("rows", "columns", "inarow"), [(6, 7, 8), (3, 3, 4), (1, 1, 2)])
def test_inarow_longer_than_the_board_is_refused_naming_the_board(rows, columns, inarow):
    message = error_of([f"env.rows={rows}", f"env.columns={columns}", f"env.inarow={inarow}"])
    assert message == (
        f"env.inarow={inarow} is larger than both board dimensions (env.rows={rows}, env.columns={columns}): "
        "no line can be completed and every game would be a draw; use an inarow of at most max(rows, columns)"
    )


@pytest.mark.parametrize(("rows", "columns", "inarow"), [(6, 7, 7), (7, 3, 7), (1, 5, 5), (1, 1, 1)])
def test_inarow_up_to_the_longer_side_is_accepted(rows, columns, inarow):
    env = load_config(None, [f"env.rows={rows}", f"env.columns={columns}", f"env.inarow={inarow}"]).env
    assert (env.rows, env.columns, env.inarow) == (rows, columns, inarow)


def test_unknown_section_and_key_in_file(tmp_path):
    assert error_of(path=write(tmp_path, "trian:\n  seed: 1\n")) == "unknown section 'trian' (did you mean 'train'?)"
    assert error_of(path=write(tmp_path, "ppo:\n  learnig_rate: 0.1\n")) == (
        "unknown key 'ppo.learnig_rate' (did you mean 'learning_rate'?)"
    )
    assert error_of(path=write(tmp_path, "env:\n  chunk_size: 4\n")) == (
        "unknown key 'env.chunk_size' (did you mean 'multiprocessing.chunk_size'?)"
    )


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.yaml"
    assert error_of(path=path) == f"config file '{path}' not found"


def test_directory_names_the_path(tmp_path):
    message = error_of(path=tmp_path)
    assert message.startswith(f"cannot read config file '{tmp_path}'")


def test_invalid_yaml_names_path_and_problem(tmp_path):
    path = write(tmp_path, "ppo:\n  n_steps: [1, 2\n")
    message = error_of(path=path)
    assert message.startswith(f"config file '{path}' is not valid YAML: ")
    assert "line" in message


def test_binary_file_names_path(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert error_of(path=path).startswith(f"cannot read config file '{path}'")


@pytest.mark.parametrize("text, kind", [("- 1\n- 2\n", "list"), ("42\n", "int"), ("hello\n", "str")])
def test_non_mapping_file_names_path(tmp_path, text, kind):
    path = write(tmp_path, text)
    assert error_of(path=path).startswith(f"config file '{path}' must contain a mapping of sections, got {kind}")


def test_section_that_is_not_a_mapping(tmp_path):
    assert error_of(path=write(tmp_path, "ppo: 3\n")) == "section 'ppo' must be a mapping of keys to values, got 3"


def test_config_from_dict_validates():
    assert config_from_dict({"ppo": {"n_epochs": 2}}).ppo.n_epochs == 2
    with pytest.raises(ConfigError, match=r"^env\.rows must be an integer >= 1, got -3$"):
        config_from_dict({"env": {"rows": -3}})
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        config_from_dict([1, 2])  # type: ignore[arg-type]


# --- multiprocessing: auto and chunk_size derivation --------------------------------------------


def test_usable_cpu_count_uses_affinity_then_cpu_count(monkeypatch):
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpu_count() == len(os.sched_getaffinity(0))
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert usable_cpu_count() == 5


@pytest.mark.parametrize(
    "cores, episodes, expected",
    [(2, 64, 2), (1, 64, 1), (8, 64, 8), (6, 64, 4), (12, 10, 10), (3, 7, 1), (16, 8, 8)],
)
def test_auto_num_processes(monkeypatch, cores, episodes, expected):
    monkeypatch.setattr(config_training, "usable_cpu_count", lambda: cores)
    cfg = load_config(overrides=[f"multiprocessing.parallel_episodes={episodes}", "ppo.batch_size=2"])
    assert cfg.multiprocessing.num_processes == "auto"  # stored unresolved ...
    mp = cfg.resolved().multiprocessing  # ... and resolved on demand
    assert (mp.num_processes, mp.chunk_size) == (expected, episodes // expected)


def test_resolve_returns_ints_and_keeps_everything_else(monkeypatch):
    monkeypatch.setattr(config_training, "usable_cpu_count", lambda: 2)
    cfg = load_config()
    resolved = cfg.resolved()
    assert resolved.multiprocessing.num_processes == 2 and resolved.multiprocessing.chunk_size == 32
    assert resolved == cfg.resolved()
    assert dataclasses.replace(resolved, multiprocessing=cfg.multiprocessing) == cfg
    assert resolved.resolved() == resolved


def test_chunk_size_is_derived():
    mp = MultiprocessingConfig(num_processes=4, parallel_episodes=64).resolved()
    assert (mp.num_processes, mp.chunk_size) == (4, 16)


def test_in_process_chunks_resolve_the_same():
    mp = MultiprocessingConfig(use_multiprocessing=False, num_processes=4, parallel_episodes=64).resolved()
    assert (mp.num_processes, mp.chunk_size) == (4, 16)


def test_consistent_explicit_chunk_size_is_accepted():
    mp = MultiprocessingConfig(num_processes=4, parallel_episodes=64, chunk_size=16)
    assert mp.resolved().chunk_size == 16


def test_parallel_episodes_not_divisible_names_all_three():
    message = error_of(["multiprocessing.num_processes=3"])
    assert message == (
        "multiprocessing.parallel_episodes=64 must be divisible by multiprocessing.num_processes=3 to derive "
        "multiprocessing.chunk_size=null (chunk_size = parallel_episodes / num_processes)"
    )


def test_inconsistent_chunk_size_is_an_error():
    assert error_of(["multiprocessing.num_processes=4", "multiprocessing.chunk_size=8"]) == (
        "multiprocessing.num_processes=4 × multiprocessing.chunk_size=8 must equal "
        "multiprocessing.parallel_episodes=64, got 4 × 8 = 32"
    )


def test_inconsistent_chunk_size_with_auto_names_the_resolved_count(monkeypatch):
    monkeypatch.setattr(config_training, "usable_cpu_count", lambda: 2)
    message = error_of(["multiprocessing.chunk_size=16"])
    assert message.startswith("multiprocessing.num_processes=auto (resolved to 2) × multiprocessing.chunk_size=16")
    assert "multiprocessing.parallel_episodes=64" in message


def test_more_processes_than_episodes_is_an_error():
    assert error_of(["multiprocessing.num_processes=8", "multiprocessing.parallel_episodes=4"]) == (
        "multiprocessing.num_processes=8 must be <= multiprocessing.parallel_episodes=4 (every process needs an env)"
    )


@settings(max_examples=60, deadline=None)
@given(processes=st.integers(1, 16), chunk=st.integers(1, 16), explicit=st.booleans())
def test_resolution_always_multiplies_out(processes, chunk, explicit):
    mp = MultiprocessingConfig(
        num_processes=processes, parallel_episodes=processes * chunk, chunk_size=chunk if explicit else None
    ).resolved()
    assert (mp.num_processes, mp.chunk_size) == (processes, chunk)


# --- opponent specs ------------------------------------------------------------------------------


def test_opponent_specs_are_validated():
    assert load_config(overrides=["env.opponent=negamax"]).env.opponent == "negamax"
    assert error_of(["env.opponent=bogus"]).startswith(
        "env.opponent='bogus' is not a valid opponent spec: unknown opponent spec 'bogus'"
    )
    assert error_of(["train.eval_opponents=[random, bogus]"]).startswith(
        "train.eval_opponents[1]='bogus' is not a valid opponent spec: unknown opponent spec 'bogus'"
    )


def test_opponent_mixtures_are_validated():
    cfg = load_config(overrides=["env.opponent={selfplay: 0.6, negamax: 0.3, random: 0.1}"])
    assert cfg.env.opponent == {"selfplay": 0.6, "negamax": 0.3, "random": 0.1}
    assert "mixture weight of 'random' must be a number >= 0, got -1" in error_of(
        ["env.opponent={negamax: 1, random: -1}"]
    )
    assert "unknown opponent spec 'negamx'" in error_of(["env.opponent={negamx: 1}"])
    assert "must not all be 0" in error_of(["env.opponent={negamax: 0}"])


def test_curriculum_stages_are_validated():
    stages = "[{opponent: random, promote_at: 0.8}, {opponent: {negamax: 1, selfplay: 1}}]"
    cfg = load_config(overrides=[f"curriculum.stages={stages}"])
    assert cfg.curriculum.stages[1]["opponent"] == {"negamax": 1, "selfplay": 1}
    assert error_of(["curriculum.stages=[{opponent: random}, {opponent: negamax}]"]) == (
        "curriculum.stages[0].promote_at must be a win rate in (0, 1] (only the last stage may omit it)"
    )
    assert error_of(["curriculum.stages=[{opponent: random, promote_at: 1.5}]"]) == (
        "curriculum.stages[0].promote_at must be a win rate in (0, 1], got 1.5"
    )
    assert "did you mean 'promote_at'" in error_of(["curriculum.stages=[{opponent: random, promote: 0.5}]"])
    assert error_of(["curriculum.stages=[{promote_at: 0.5}]"]).startswith("curriculum.stages[0] needs an opponent")
    assert "curriculum.stages must be a list of mappings, got [1]" in error_of(["curriculum.stages=[1]"])


# --- save / round trip ---------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    cfg = load_config(
        CONFIGS / "quick.yaml",
        [
            "ppo.learning_rate=1e-4",
            "ppo.target_kl=0.02",
            "train.run_name=exp1",
            "logging.verbose=2",
            "env.agent_seat=second",
            "policy.net_arch=[]",
        ],
    )
    path = tmp_path / "sub" / "config.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == config_to_dict(cfg)
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temp file left behind


def test_resolved_config_round_trips(tmp_path):
    resolved = load_config().resolved()
    save_config(resolved, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == resolved


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    save_config(Config(), path)
    before = path.read_text(encoding="utf-8")

    def failing_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        save_config(load_config(overrides=["train.seed=9"]), path)
    assert path.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


# --- generated reference -------------------------------------------------------------------------


def test_reference_markdown_has_a_row_per_key():
    table = config_reference_markdown()
    lines = table.strip().splitlines()
    assert lines[0] == "| key | default | meaning |"
    rows = lines[2:]
    # one row per key; a key that several teacher kinds take has a row per kind
    assert list(dict.fromkeys(row.split("`")[1] for row in rows)) == config_keys()
    assert all(row.count(" | ") == 2 for row in rows)  # no stray '|' inside a cell
    assert "| `kickstart.teacher.depth` | `4` | (solver) " in table
    assert "| `ppo.learning_rate` | `0.001` | " in table
    assert "| `policy.cnn_channels` | `[64, 64]` | " in table
    assert "| `train.run_name` | `null` | " in table
    assert "One of: first, second, random." in table


def test_module_main_prints_default_yaml_and_markdown(capsys):
    config_module.main([])
    assert capsys.readouterr().out == default_config_yaml()
    config_module.main(["--markdown"])
    assert capsys.readouterr().out == config_reference_markdown()


def test_section_classes_are_exported():
    assert SECTIONS == {
        "env": EnvConfig,
        "multiprocessing": MultiprocessingConfig,
        "ppo": PPOConfig,
        "policy": PolicyConfig,
        "train": TrainConfig,
        "selfplay": SelfPlayConfig,
        "curriculum": CurriculumConfig,
        "kickstart": KickstartConfig,
        "alphazero": AlphaZeroConfig,
        "ray": RayConfig,
        "logging": LoggingConfig,
    }


@pytest.mark.parametrize("name, board", [("alphazero.yaml", (6, 7, 4)), ("alphazero-5x6.yaml", (5, 6, 4))])
def test_alphazero_recipes_train_from_scratch_by_alphazeros_loop(name, board):
    config = load_config(CONFIGS / name).resolved()
    assert config.train.algorithm == "alphazero" and config.train.init_from is None
    assert (config.env.rows, config.env.columns, config.env.inarow) == board
    assert config.train.checkpoint_every < config.train.total_timesteps
    assert f"python -m connectx_gym.train --config configs/{name}" in (CONFIGS / name).read_text(encoding="utf-8")
