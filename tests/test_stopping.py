"""Stopping a long command never costs its work: the stop signals, output whose reader went away, and the
train command stopped in a subprocess as a user stops it (Ctrl-C at ``train | tee``, a closed terminal)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TINY_AZ, run_train, train_command

from connectx_gym.inference.numpy_policy import load_checkpoint
from connectx_gym.runtime import stopping
from connectx_gym.runtime.stopping import GuardedStream, Stopped, announce, guard_output, stop_signals

# ---------------------------------------------------------------------- units


def test_stopped_names_its_signal_and_the_shells_exit_code():
    assert (Stopped().exit_code, Stopped().reason) == (130, "interrupted")
    assert (Stopped(signal.SIGTERM).exit_code, Stopped(signal.SIGTERM).reason) == (143, "stopped by SIGTERM")
    assert (Stopped(signal.SIGHUP).exit_code, Stopped(signal.SIGHUP).reason) == (129, "stopped by SIGHUP")
    assert isinstance(Stopped(), KeyboardInterrupt)
    assert stopping.as_stopped(KeyboardInterrupt()).signum == signal.SIGINT


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_raises_stopped_once_and_the_old_handler_comes_back(signum):
    before = signal.getsignal(signum)
    with pytest.raises(Stopped) as caught, stop_signals():
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises before this ends
    assert caught.value.signum == signum
    assert signal.getsignal(signum) is before


def test_a_second_signal_during_the_save_is_ignored():
    saved = []
    with stop_signals():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except Stopped:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while "saving": must not cut it short
            time.sleep(0.05)
            saved.append(True)
    assert saved == [True]


def test_a_signal_ignored_at_the_start_stays_ignored():
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with stop_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_write_to_a_pipe_without_reader_is_dropped_and_the_stream_goes_to_devnull():
    read_end, write_end = os.pipe()
    stream = open(write_end, "w", buffering=1)  # noqa: SIM115 - closed below
    guarded = GuardedStream(stream)
    os.close(read_end)
    assert guarded.write("lost\n") == 5 and guarded.broken
    guarded.write("more\n")  # no error, now into /dev/null
    guarded.flush()
    assert not guarded.isatty()
    stream.close()


def test_a_guarded_stream_passes_everything_through_while_it_works():
    buffer = io.StringIO()
    guarded = GuardedStream(buffer)
    print("hello", file=guarded)
    guarded.flush()
    assert buffer.getvalue() == "hello\n" and not guarded.broken and guarded.getvalue() == "hello\n"


def test_announce_uses_the_first_output_that_works(monkeypatch):
    class Broken(io.StringIO):
        broken = True

    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", Broken())
    monkeypatch.setattr(sys, "stdout", out)
    announce("continue with --resume run")
    assert out.getvalue() == "continue with --resume run\n" and sys.stderr.getvalue() == ""


def test_guard_output_restores_the_streams():
    before = sys.stdout, sys.stderr
    with guard_output():
        assert isinstance(sys.stdout, GuardedStream) and isinstance(sys.stderr, GuardedStream)
    assert (sys.stdout, sys.stderr) == before


# ---------------------------------------------------------------------- the train command, stopped

PLANNED = 16384


def as_a_job() -> None:
    """In the child before it runs: its own process group, as a shell starts a job, with every stop
    signal at its default even where the tests run under nohup or in the background."""
    for signum in stopping.STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    os.setpgrp()


def _start_train(cwd: Path, name: str, stdout, checkpoint_every: int) -> subprocess.Popen:
    """The quick recipe (two env worker processes) in its own process group, as a shell starts a job,
    with every stop signal at its default even where the tests run under nohup or in the background."""

    command = train_command(
        f"train.run_name={name}",
        f"train.total_timesteps={PLANNED}",
        f"train.checkpoint_every={checkpoint_every}",
        "train.eval_every=0",
    )
    return subprocess.Popen(command, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT, preexec_fn=as_a_job)


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _stop_when(process: subprocess.Popen, out: Path, marker: bytes, what: str, signum: int, pause: float) -> int:
    """Once ``marker`` is in the output file ``out`` (and ``pause`` seconds later), send ``signum`` to the
    process's group; its exit status (it is killed if it has not exited within a minute)."""
    try:
        _wait_for(lambda: marker in out.read_bytes(), what)
        time.sleep(pause)
        os.killpg(process.pid, signum)
        return process.wait(timeout=60)
    finally:
        process.kill()


def _checkpoints(run: Path) -> list[Path]:
    folder = run / "checkpoints"
    return sorted(folder.glob("step_*.zip")) if folder.is_dir() else []


def _step(path: Path) -> int:
    return int(path.stem.split("_")[1])


def _resume_reaches_the_plan(cwd: Path, run: Path, stopped_at: int) -> None:
    policy = load_checkpoint(_checkpoints(run)[-1])  # the checkpoint the stop saved loads
    assert policy.board == {"rows": 6, "columns": 7, "inarow": 4}
    result = run_train(cwd, "--resume", str(run), "--set", "logging.progress_bar=false")
    assert result.returncode == 0, result.stderr
    assert f"step {stopped_at}" in result.stderr
    assert _step(_checkpoints(run)[-1]) == PLANNED and (run / "final_model.zip").is_file()


def test_ctrl_c_after_the_tee_died_saves_says_so_and_resumes(tmp_path):
    """``train 2>&1 | tee log``: the reader is killed, the run goes on (a periodic checkpoint is written
    after that), then Ctrl-C reaches the group: it saves, exits 130, and the run resumes to its plan."""
    log = tmp_path / "tee.log"
    process = _start_train(tmp_path, "piped", subprocess.PIPE, checkpoint_every=2048)
    with open(log, "wb") as sink:
        tee = subprocess.Popen(["cat"], stdin=process.stdout, stdout=sink)
    process.stdout.close()
    run = tmp_path / "models" / "piped"
    try:
        _wait_for(lambda: b"train:" in log.read_bytes(), "the progress bar")
        tee.kill()
        tee.wait()
        killed = time.time()
        _wait_for(lambda: any(p.stat().st_mtime > killed for p in _checkpoints(run)), "a checkpoint after the kill")
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        process.kill()
        tee.kill()
    assert code == 130
    saved = _checkpoints(run)[-1]
    assert _step(saved) < PLANNED and not (run / "final_model.zip").exists()
    _resume_reaches_the_plan(tmp_path, run, _step(saved))


def test_a_closed_terminal_saves_and_resumes(tmp_path):
    """SIGHUP to the group (the terminal closed), no pipe and no periodic checkpoint: the stop's own
    save is the only one, the last line says how to resume, and the exit status is 129."""
    out = tmp_path / "out.log"
    with open(out, "wb") as sink:
        process = _start_train(tmp_path, "hangup", sink, checkpoint_every=10**9)
    run = tmp_path / "models" / "hangup"
    code = _stop_when(process, out, b"train:", "the progress bar", signal.SIGHUP, pause=1.0)
    assert code == 129, out.read_text()
    (saved,) = _checkpoints(run)
    text = out.read_text()
    assert text.rstrip().endswith(
        f"stopped by SIGHUP: saved {saved.relative_to(tmp_path)}; continue with --resume {run.relative_to(tmp_path)}"
    )
    assert "Traceback" not in text
    _resume_reaches_the_plan(tmp_path, run, _step(saved))


def test_alphazero_stopped_by_sigterm_to_its_group_during_the_fit_saves_and_resumes(tmp_path):
    """``timeout`` and schedulers send SIGTERM to the whole process group. AlphaZero's self-play
    workers (two processes) sit idle while the learner fits; the stop must not hang on them: the run
    saves, exits 143, and resumes."""
    out = tmp_path / "out.log"
    overrides = [
        *TINY_AZ,
        "train.run_name=az",
        "multiprocessing.use_multiprocessing=true",
        "multiprocessing.num_processes=2",
        "alphazero.epochs=80",  # the fit takes most of each generation: the stop lands there
        "train.total_timesteps=100000",
    ]

    with open(out, "wb") as sink:
        process = subprocess.Popen(
            train_command(*overrides), cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT, preexec_fn=as_a_job
        )
    run = tmp_path / "models" / "az"
    code = _stop_when(process, out, b"generation 1:", "the first generation", signal.SIGTERM, pause=0.5)
    text = out.read_text()
    assert code == 143, text
    (saved,) = _checkpoints(run)
    assert "stopped by SIGTERM: saved" in text and "Traceback" not in text
    result = run_train(
        tmp_path,
        "--resume",
        str(run),
        "--set",
        "alphazero.epochs=1",
        "--set",
        f"train.total_timesteps={_step(saved) + 50}",
    )
    assert result.returncode == 0, result.stderr
    assert (run / "final_model.zip").is_file()
