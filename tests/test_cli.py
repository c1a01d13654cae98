"""What every command shares: exit codes of ``run_command``, including a reader that closes the pipe."""

from __future__ import annotations

import subprocess
import sys

from connectx_gym.cli import run_command
from connectx_gym.errors import UserError, WorkerError


def test_exit_codes(capsys):
    def fail(error):
        def command():
            raise error

        return command

    assert run_command(lambda: None) == 0 and run_command(lambda: 3) == 3
    assert run_command(fail(UserError("bad value 7"))) == 2
    assert run_command(fail(WorkerError("worker 0 died"))) == 1
    assert run_command(fail(KeyboardInterrupt())) == 130
    err = capsys.readouterr().err
    assert "error: bad value 7\n" in err and "error: worker 0 died\n" in err and "interrupted" in err


def test_a_closed_pipe_ends_the_command_quietly():
    # ``evaluate ... | head -1``: the reader goes away while the tables are printed
    command = [sys.executable, "-m", "connectx_gym.evaluate", "--tournament", "random", "negamax", "alphabeta:1"]
    with subprocess.Popen(command + ["--games", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        process.stdout.close()  # before anything is printed
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=120)
    assert stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert code == 141
