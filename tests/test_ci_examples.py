"""examples/ci/: the pipelines are valid YAML, and the adapto commands they run really work.

Every `adapto ...` line of a `run:` step (GitHub Actions) or a `script:` entry
(GitLab CI) is extracted. The unit tests parse each with the CLI's own click
parser (the subcommand and every flag must exist). The end-to-end test runs
the very same lines with bash against a sandbox on this module's loopback
slot, with ADAPTO_ENV=op and ADAPTO_INVENTORY pointing at it, as a pipeline
would: render --check, a first deploy, then health --junit, whose file must
be JUnit XML.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from tests.e2e_support import REPO, cli_env, run_to_files, said, sandbox_marks
from tests.operate_sandbox import Slot, deployed_sandbox

EXAMPLES = REPO / "examples" / "ci"
GITHUB, GITLAB = EXAMPLES / "github-actions.yml", EXAMPLES / "gitlab-ci.yml"
# Shares the status module's slot: pytest runs modules one after the other, and each
# module's sandbox is purged before the next one starts.
SLOT = Slot("127.0.0.95", 2395, 8395, 8495, (3395, 3396))


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def adapto_lines(texts: list[str]) -> list[str]:
    return [line.strip() for text in texts for line in text.splitlines()
            if line.strip().startswith("adapto ")]


def github_commands() -> list[str]:
    jobs = load(GITHUB)["jobs"]
    return adapto_lines([step["run"] for job in jobs.values() for step in job["steps"]
                         if "run" in step])


def gitlab_commands() -> list[str]:
    texts: list[str] = []
    for name, job in load(GITLAB).items():
        if isinstance(job, dict) and not name.startswith(".") and "script" in job:
            for key in ("before_script", "script", "after_script"):
                texts += job.get(key) or []
    return adapto_lines(texts)


def argv(line: str, env_name: str) -> list[str]:
    """The arguments after `adapto`, with the environment variable filled in."""
    words = shlex.split(line.replace("$ADAPTO_ENV", env_name))
    assert words[0] == "adapto"
    return words[1:]


# --- unit: the files and the command lines ------------------------------------------------


def test_both_pipelines_run_the_same_three_commands() -> None:
    for commands in (github_commands(), gitlab_commands()):
        assert [c.split()[1] for c in commands] == ["render", "deploy", "health"], commands
    assert github_commands() == gitlab_commands()
    assert all('-e "$ADAPTO_ENV"' in c for c in github_commands())


def test_github_workflow_shape() -> None:
    data = load(GITHUB)
    assert data["env"]["ADAPTO_ENV"] == "production"
    job = data["jobs"]["deploy"]
    uses = [step.get("uses", "") for step in job["steps"]]
    assert uses[0].startswith("actions/checkout@")
    # The health report is published even when the deploy or the checks failed.
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith(
        "actions/upload-artifact@"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "health.xml"
    health = next(s for s in job["steps"] if "adapto health" in s.get("run", ""))
    assert health["if"] == "always()"
    # Secret values come from GitHub secrets, never written into the file.
    assert all(str(v).startswith("${{ secrets.") for v in job["env"].values())


def test_gitlab_job_shape() -> None:
    data = load(GITLAB)
    assert data["variables"]["ADAPTO_ENV"] == "production"
    assert data["deploy"]["artifacts"]["reports"]["junit"] == "health.xml"
    assert data["deploy"]["artifacts"]["when"] == "always"


@pytest.mark.parametrize("line", sorted(set(github_commands() + gitlab_commands())))
def test_every_command_parses_with_the_cli(line: str) -> None:
    """click's own parser: an unknown subcommand or flag fails here, nothing runs."""
    from adapto_ops.cli import app

    group = typer.main.get_command(app)
    args = argv(line, "production")
    context = group.make_context("adapto", list(args))
    name, command, rest = group.resolve_command(context, args)
    assert command is not None, line
    try:
        command.make_context(name or "", rest, parent=context)
    except typer.TyperException as exc:  # typer's own click: UsageError, NoSuchOption, ...
        pytest.fail(f"`{line}`: {exc}")


# --- end to end: the same lines, against a sandbox ------------------------------------------


E2E = [pytest.mark.e2e, *sandbox_marks()]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("pipeline", [pytest.param(GITHUB, id="github", marks=E2E),
                                      pytest.param(GITLAB, id="gitlab", marks=E2E)])
def test_pipeline_commands_run_against_the_sandbox(pipeline: Path, tmp_path: Path) -> None:
    commands = github_commands() if pipeline == GITHUB else gitlab_commands()
    # `adapto` on PATH is this checkout, as `pip install` would put it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "adapto"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m adapto_ops "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    work = tmp_path / "job"  # the job's working folder: health.xml lands here
    work.mkdir()
    with deployed_sandbox(tmp_path / "sandbox", SLOT, deploy=False) as box:
        env = {**cli_env(), "ADAPTO_ENV": "op", "ADAPTO_INVENTORY": str(box.inventory),
               "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        for line in commands:
            result = run_to_files(["bash", "-e", "-c", line], env, 240, cwd=work)
            assert result.returncode == 0, f"`{line}`\n{said(result)}"
        assert box.get().status_code == 200
    report = ET.parse(work / "health.xml").getroot()
    assert report.tag in {"testsuites", "testsuite"}
    cases = list(report.iter("testcase"))
    assert cases, "health.xml has no testcase"
    assert not [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
