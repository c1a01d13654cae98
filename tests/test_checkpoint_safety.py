"""Opening a checkpoint never runs code from it: crafted zips are evaluated, played and exported.

Every zip here carries a pickled payload that creates a marker file when unpickled (the sanity
tests show that SB3's full loader and a plain ``torch.load`` do run it). The commands that only
play with a checkpoint read its ``connectx_gym.json`` and its weights with
``torch.load(weights_only=True)``: the marker must never appear, and each command must work or
refuse on one line. Truncated zips, wrong shapes and other boards get one-line errors too.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from connectx_gym.evaluate import main as evaluate_main
from connectx_gym.export import main as export_main
from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.runtime.checkpoints import (
    METADATA_MEMBER,
    TRUST_ENV,
    CheckpointError,
    load_model,
    read_metadata,
    save_model,
    trusted_checkpoints,
)

BOARD = {"rows": 6, "columns": 7, "inarow": 4}


class Payload:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): stands for any code in a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> bytes:
    """A tiny checkpoint as the trainer saves it (with its metadata), as bytes."""
    from helpers import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("saved") / "tiny.zip", BOARD).read_bytes()


def rewrite(source: bytes, path: Path, replace: dict[str, bytes | None]) -> Path:
    """``source``'s members with some replaced (``None``: dropped), written to ``path``."""
    with zipfile.ZipFile(io.BytesIO(source)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for name, content in replace.items():
        if content is None:
            members.pop(name, None)
        else:
            members[name] = content
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def poisoned_data(source: bytes, marker: Path) -> bytes:
    """SB3's ``data`` member with its pickled policy class replaced by the payload."""
    with zipfile.ZipFile(io.BytesIO(source)) as archive:
        data = json.loads(archive.read("data"))
    data["policy_class"][":serialized:"] = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    return json.dumps(data).encode()


def poisoned_weights(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"features_extractor.cnn.0.weight": Payload(marker)}, buffer)
    return buffer.getvalue()


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


@pytest.fixture
def legacy(saved, tmp_path, marker) -> Path:
    """An SB3 zip without metadata (the older format) whose pickled policy class is the payload."""
    return rewrite(saved, tmp_path / "legacy.zip", {METADATA_MEMBER: None, "data": poisoned_data(saved, marker)})


@pytest.fixture
def poisoned_pth(saved, tmp_path, marker) -> Path:
    """Valid metadata, but ``policy.pth`` holds the payload instead of tensors."""
    return rewrite(saved, tmp_path / "pth.zip", {"policy.pth": poisoned_weights(marker)})


@pytest.fixture
def poisoned_data_only(saved, tmp_path, marker) -> Path:
    """Valid metadata and weights, and the payload in SB3's ``data``, which safe loading never reads."""
    return rewrite(saved, tmp_path / "data.zip", {"data": poisoned_data(saved, marker)})


def test_the_payloads_run_when_unpickled(legacy, poisoned_pth, marker):
    """The crafted files are real threats: SB3's full loader and an unrestricted torch.load run them."""
    with pytest.raises(CheckpointError):
        load_model(legacy)
    assert marker.exists()
    marker.unlink()
    with zipfile.ZipFile(poisoned_pth) as archive:
        torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=False)
    assert marker.exists()


def test_the_trainer_writes_plain_json_metadata(saved):
    with zipfile.ZipFile(io.BytesIO(saved)) as archive:
        metadata = json.loads(archive.read(METADATA_MEMBER))
    assert metadata["board"] == BOARD and metadata["activation"] == "relu"
    assert metadata["observation_shape"] == [4, 6, 7]
    assert metadata["weights"]["action_net.weight"] == [7, 8]


def test_the_shipped_model_loads_safely():
    root = Path(__file__).resolve().parent.parent
    assert read_metadata(root / "models" / "pretrained" / "model.zip")["board"] == BOARD


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("kind", ["file", "checkpoint", "mcts"])
def test_evaluate_refuses_a_legacy_zip_naming_the_flag(legacy, marker, capsys, kind):
    spec = str(legacy) if kind == "file" else f"{kind}:{legacy}"
    assert evaluate_main([spec, "--opponents", "random", "--games", "2", "--num-processes", "1"]) == 2
    err = one_error_line(capsys)
    assert str(legacy) in err and "--trust-checkpoint" in err and "connectx_gym.json" in err
    assert not marker.exists()


def test_export_refuses_a_legacy_zip_and_writes_nothing(legacy, marker, tmp_path, capsys):
    output = tmp_path / "submission.py"
    assert export_main([str(legacy), "-o", str(output)]) == 2
    assert "--trust-checkpoint" in one_error_line(capsys)
    assert not marker.exists() and not output.exists()


def test_a_poisoned_policy_pth_is_refused(poisoned_pth, marker, tmp_path, capsys):
    assert evaluate_main([str(poisoned_pth), "--opponents", "random", "--games", "2", "--num-processes", "1"]) == 2
    assert "policy.pth is not plain weights" in one_error_line(capsys)
    output = tmp_path / "submission.py"
    assert export_main([str(poisoned_pth), "-o", str(output)]) == 2
    assert "policy.pth is not plain weights" in one_error_line(capsys)
    assert not marker.exists() and not output.exists()


def test_a_payload_in_sb3_data_is_never_read(poisoned_data_only, marker, tmp_path, capsys):
    """Evaluate and export work from the metadata and weights; the pickles in ``data`` stay unread."""
    assert (
        evaluate_main([str(poisoned_data_only), "--opponents", "random", "--games", "2", "--num-processes", "1"]) == 0
    )
    assert "random" in capsys.readouterr().out
    output = tmp_path / "submission.py"
    assert export_main([str(poisoned_data_only), "-o", str(output)]) == 0
    assert output.is_file()
    assert not marker.exists()


def play(*args: str) -> subprocess.CompletedProcess:
    """``python -m connectx_gym.play`` with no input (it quits at the end of input)."""
    return subprocess.run(
        [sys.executable, "-m", "connectx_gym.play", *args, "--second"],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        env={key: value for key, value in __import__("os").environ.items() if key != TRUST_ENV},
    )


def test_play_never_runs_the_payload(legacy, poisoned_data_only, marker):
    refused = play(str(legacy))
    assert refused.returncode == 2 and "--trust-checkpoint" in refused.stderr
    assert "Traceback" not in refused.stderr
    played = play(f"mcts:{poisoned_data_only}:8")
    assert played.returncode == 0, played.stderr
    assert "search: 8 simulations" in played.stdout and "quit" in played.stdout
    assert not marker.exists()


def test_trust_checkpoint_loads_an_older_zip(saved, tmp_path, capsys):
    """``--trust-checkpoint`` is today's full load, for a file without metadata that you trust; and
    ``--upgrade-checkpoint`` writes it with its metadata, loading safely from then on."""
    older = rewrite(saved, tmp_path / "older.zip", {METADATA_MEMBER: None})
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        load_checkpoint(older)
    args = ["--opponents", "random", "--games", "2", "--num-processes", "1", "--trust-checkpoint"]
    assert evaluate_main([str(older), *args]) == 0
    upgraded = tmp_path / "upgraded.zip"
    assert export_main([str(older), "--upgrade-checkpoint", str(upgraded)]) == 2
    assert "--trust-checkpoint" in one_error_line(capsys) and not upgraded.exists()
    assert export_main([str(older), "--trust-checkpoint", "--upgrade-checkpoint", str(upgraded)]) == 0
    assert read_metadata(upgraded)["board"] == BOARD
    with trusted_checkpoints():
        old_policy = load_checkpoint(older)
    new_policy = load_checkpoint(upgraded)
    for name, array in old_policy.arrays().items():
        assert (new_policy.arrays()[name] == array).all(), name


def json_with(saved: bytes, **changes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(saved)) as archive:
        metadata = json.loads(archive.read(METADATA_MEMBER))
    metadata.update(changes)
    return json.dumps(metadata).encode()


def bad_files(saved: bytes, folder: Path) -> dict[str, tuple[Path, str]]:
    """Broken checkpoints, each with the words its error must contain."""
    small_weights = dict(json.loads(zipfile.ZipFile(io.BytesIO(saved)).read(METADATA_MEMBER))["weights"])
    small_weights["action_net.weight"] = [6, 8]
    truncated = folder / "truncated.zip"
    truncated.write_bytes(saved[:-200])  # a download cut short: the zip's directory is gone
    garbage = folder / "garbage.zip"
    garbage.write_bytes(b"<html>404 not found</html>")
    halved = folder / "halved.zip"
    halved.write_bytes(saved[: len(saved) // 2])  # cut mid-way: a torch archive inside may look like the zip
    return {
        "truncated": (truncated, "truncated, or not an SB3 checkpoint"),
        "not-a-zip": (garbage, "not a valid SB3 checkpoint zip"),
        "halved": (halved, "truncated, or not an SB3 checkpoint"),
        "metadata-shape": (
            rewrite(saved, folder / "shape.zip", {METADATA_MEMBER: json_with(saved, weights=small_weights)}),
            "weight 'action_net.weight' has shape [7, 8], its metadata says [6, 8]",
        ),
        "other-board": (
            rewrite(
                saved,
                folder / "board.zip",
                {
                    METADATA_MEMBER: json_with(
                        saved, board={"rows": 5, "columns": 6, "inarow": 4}, observation_shape=[4, 5, 6]
                    )
                },
            ),  # fmt: skip
            "its weights do not fit a 5x6 board",
        ),
        "observation": (
            rewrite(saved, folder / "obs.zip", {METADATA_MEMBER: json_with(saved, observation_shape=[3, 6, 7])}),
            "observation shape [3, 6, 7] does not fit its 6x7 board",
        ),
        "not-json": (rewrite(saved, folder / "json.zip", {METADATA_MEMBER: b"{not json"}), "is not valid JSON"),
        "missing-weights": (
            rewrite(saved, folder / "pth.zip", {"policy.pth": None}),
            "truncated, or not an SB3 checkpoint (it lacks policy.pth)",
        ),
    }


@pytest.mark.parametrize(
    "name",
    ["truncated", "not-a-zip", "halved", "metadata-shape", "other-board", "observation", "not-json", "missing-weights"],
)
def test_broken_checkpoints_get_one_line_naming_the_problem(saved, tmp_path, capsys, name):
    path, words = bad_files(saved, tmp_path)[name]
    output = tmp_path / "submission.py"
    assert export_main([str(path), "-o", str(output)]) == 2
    err = one_error_line(capsys)
    assert words in err and str(path) in err
    assert not output.exists()
    assert evaluate_main([f"mcts:{path}:8", "--opponents", "random", "--games", "2", "--num-processes", "1"]) == 2
    assert words in one_error_line(capsys)


def test_a_checkpoint_of_another_board_is_refused_on_this_one(tmp_path, capsys):
    from helpers import tiny_model

    path = save_model(tiny_model({"rows": 5, "columns": 6, "inarow": 4}), tmp_path / "small.zip")
    result = play(str(path), "--rows", "6", "--columns", "7")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "trained on a 5x6 with 4 in a row board" in result.stderr


def test_a_checkpoint_naming_the_policy_module_of_earlier_versions_still_loads(saved, tmp_path, monkeypatch):
    """Checkpoints saved before the package moved into folders pickle their features extractor as
    ``connectx_gym.policy.BoardCNN``: the full loader (resume, ``--trust-checkpoint``) resolves it."""
    import connectx_gym.runtime.checkpoints as checkpoints
    from connectx_gym.training import policy

    data = json.loads(zipfile.ZipFile(io.BytesIO(saved)).read("data"))
    kwargs = pickle.loads(base64.b64decode(data["policy_kwargs"][":serialized:"]))  # the test's own file
    with monkeypatch.context() as old_layout:  # pickle the class under the module name it once had
        old_layout.setitem(sys.modules, "connectx_gym.policy", policy)
        old_layout.setattr(policy.BoardCNN, "__module__", "connectx_gym.policy")
        serialized = pickle.dumps(kwargs, protocol=4)
    assert b"connectx_gym.policy" in serialized and b"connectx_gym.training.policy" not in serialized
    data["policy_kwargs"][":serialized:"] = base64.b64encode(serialized).decode()
    older = rewrite(saved, tmp_path / "older.zip", {"data": json.dumps(data).encode()})

    monkeypatch.delitem(sys.modules, "connectx_gym.policy", raising=False)
    with monkeypatch.context() as no_alias:
        no_alias.setattr(checkpoints, "MOVED_MODULES", {})
        with pytest.raises(CheckpointError, match="connectx_gym.policy"):
            load_model(older)
    monkeypatch.delitem(sys.modules, "connectx_gym.policy", raising=False)
    model = load_model(older)
    assert model.policy.features_extractor_class is policy.BoardCNN
