"""Shared pytest fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sandbox_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m adapto_ops ARGS` from the repository, as a user would; never raises.

    Output goes to files rather than pipes, so a daemon the command starts
    (sshd, nginx, PM2) cannot keep the call waiting for EOF on a pipe.
    """

    def call(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(_REPO), "COLUMNS": "250"}
        env.pop("ADAPTO_INVENTORY", None)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(
                [sys.executable, "-m", "adapto_ops", *args],
                cwd=_REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=env, timeout=timeout, check=False,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())

    return call
