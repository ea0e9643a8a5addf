"""The `adapto` command line end to end: render, check, init, help, and an installed wheel."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from adapto_ops.inventory import load_inventory, parse_inventory
from adapto_ops.inventory.secrets import dotenv_quote, parse_dotenv

REPO = Path(__file__).resolve().parent.parent
INVENTORY = REPO / "inventory.yaml"
PRODUCTION = load_inventory(INVENTORY).environment("production")
SECRET_NAMES = list(PRODUCTION.secrets.names)
# Distinct, unguessable-looking values, one with characters that need quoting.
SECRET_VALUES = {
    name: f"s3cr3t-{name.lower()}-{i}-Zq9" for i, name in enumerate(SECRET_NAMES)
}
SECRET_VALUES[SECRET_NAMES[0]] = 'quote" back\\slash and space-Zq9'


def cli_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if k not in {"ADAPTO_INVENTORY", "ADAPTO_VERBOSE", *SECRET_NAMES}
    }
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def adapto(*args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapto_ops", *args],
        cwd=cwd, env=env or cli_env(), capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    """A private copy of inventory.yaml: no .secrets/ file of the checkout can leak in."""
    copy = tmp_path / "inventory" / "inventory.yaml"
    copy.parent.mkdir()
    shutil.copy(INVENTORY, copy)
    return copy


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_render_all_writes_five_files_and_never_prints_secrets(tmp_path: Path, inv: Path) -> None:
    out = tmp_path / "out"
    proc = adapto("render", "all", "-e", "production", "--out", str(out), "-i", str(inv),
                  cwd=tmp_path, env=cli_env(**SECRET_VALUES))
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted([
        f"nginx/{PRODUCTION.nginx.canonical_name}.conf",
        "pm2/ecosystem.config.js",
        "firewall/ufw.sh",
        "env/backend.env",
        "logrotate/ai-platform",
    ])
    for value in SECRET_VALUES.values():
        assert value not in proc.stdout and value not in proc.stderr
        assert dotenv_quote(value) not in proc.stdout
    # Every file is announced with its destination on the host.
    for rel in written:
        assert str(out / rel) in proc.stdout
    env_file = out / "env" / "backend.env"
    assert _mode(env_file) == 0o600
    assert _mode(out / "firewall" / "ufw.sh") == 0o755
    assert _mode(out / "nginx" / f"{PRODUCTION.nginx.canonical_name}.conf") == 0o644
    values = parse_dotenv(env_file.read_text(encoding="utf-8"))
    for name, value in SECRET_VALUES.items():
        assert values[name] == value
    for name, value in PRODUCTION.backend.env.items():
        assert values[name] == value
    # All secrets set: no warning about missing ones.
    assert "warning" not in proc.stderr


def test_render_env_to_stdout_is_masked(tmp_path: Path, inv: Path) -> None:
    proc = adapto("render", "env", "-e", "production", "-i", str(inv), cwd=tmp_path,
                  env=cli_env(**SECRET_VALUES))
    assert proc.returncode == 0, proc.stderr
    for name, value in SECRET_VALUES.items():
        assert value not in proc.stdout
        assert f"{name}=****({len(value)} chars)" in proc.stdout.splitlines()


def test_render_warns_about_missing_secrets_by_name_only(tmp_path: Path, inv: Path) -> None:
    some = dict(list(SECRET_VALUES.items())[:2])
    out = tmp_path / "out"
    proc = adapto("render", "env", "-e", "production", "--out", str(out), "-i", str(inv),
                  cwd=tmp_path, env=cli_env(**some))
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1
    for name in SECRET_NAMES[2:]:
        assert name in warning[0]
    for value in some.values():
        assert value not in proc.stderr
    assert set(parse_dotenv((out / "env" / "backend.env").read_text())) >= set(some)


def test_render_overwrites_a_loose_env_file_with_mode_0600(tmp_path: Path, inv: Path) -> None:
    out = tmp_path / "out"
    (out / "env").mkdir(parents=True)
    (out / "env" / "backend.env").write_text("old\n")
    (out / "env" / "backend.env").chmod(0o644)
    proc = adapto("render", "env", "-e", "production", "--out", str(out), "-i", str(inv),
                  cwd=tmp_path, env=cli_env(**SECRET_VALUES))
    assert proc.returncode == 0, proc.stderr
    assert _mode(out / "env" / "backend.env") == 0o600
    assert "old" not in (out / "env" / "backend.env").read_text()


@pytest.mark.tools
@pytest.mark.timeout(120)
@pytest.mark.skipif(
    not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()), reason="nginx missing"
)
def test_render_nginx_sandbox_check_exits_0(tmp_path: Path, inv: Path) -> None:
    proc = adapto("render", "nginx", "-e", "sandbox", "--check", "-i", str(inv),
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines and all(line.startswith("ok ") for line in lines), proc.stdout
    assert "nginx -t accepts" in proc.stdout


@pytest.mark.tools
@pytest.mark.timeout(180)
def test_render_all_check_fails_only_for_missing_secrets(tmp_path: Path, inv: Path) -> None:
    """Without secrets only the env check fails, with exit code 1; with them all pass."""
    for tool in ("node", "ufw", "logrotate", "nginx"):
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")):
            pytest.skip(f"{tool} missing")
    proc = adapto("render", "all", "-e", "production", "--check", "-i", str(inv),
                  cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and " env " in failed[0]
    proc = adapto("render", "all", "-e", "production", "--check", "-i", str(inv),
                  cwd=tmp_path, env=cli_env(**SECRET_VALUES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for value in SECRET_VALUES.values():
        assert value not in proc.stdout + proc.stderr


def test_render_unwritable_out_is_a_clean_error(tmp_path: Path, inv: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = adapto("render", "nginx", "-e", "production", "--out", str(blocker), "-i",
                  str(inv), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: cannot write under ")


def test_init_writes_a_valid_inventory_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "new" / "inventory.yaml"
    path.parent.mkdir()
    proc = adapto("init", str(path), "--project", "shop", "--domain", "shop.example.com",
                  "--address", "198.51.100.7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert str(path) in proc.stdout
    text = path.read_text(encoding="utf-8")
    loaded = parse_inventory(text, path)
    assert loaded.inventory.project == "shop"
    env = loaded.environment("production")
    assert env.nginx.server_names == ["shop.example.com", "www.shop.example.com"]
    assert env.hosts[0].address == "198.51.100.7"
    assert env.paths.root == "/var/www/shop"
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns

    again = adapto("init", str(path), "--project", "other", cwd=tmp_path)
    assert again.returncode == 2
    assert "Traceback" not in again.stderr
    assert again.stderr.startswith(f"error: {path} already exists")
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime


def test_init_default_path_then_render(tmp_path: Path) -> None:
    proc = adapto("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "inventory.yaml").is_file()
    render = adapto("render", "nginx", "-e", "production", cwd=tmp_path)
    assert render.returncode == 0, render.stderr
    assert "server_name example.com;" in render.stdout


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_commands(tmp_path: Path, flag: str) -> None:
    proc = adapto(flag, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "render" in proc.stdout and "init" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_usage_error_exits_2(tmp_path: Path) -> None:
    proc = adapto("render", "nginx", cwd=tmp_path)  # -e is required
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    proc = adapto("render", "bogus", "-e", "production", cwd=tmp_path)
    assert proc.returncode == 2


IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache", ".adapto",
    ".secrets", "dist", "build", "*.egg-info",
)


@pytest.mark.tools
@pytest.mark.timeout(300)
def test_installed_wheel_ships_the_templates(tmp_path: Path) -> None:
    """pip install into a fresh venv, then render from another folder: templates are found."""
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=IGNORE)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "ADAPTO_INVENTORY", "VIRTUAL_ENV", *SECRET_NAMES}}
    # hatchling and the runtime dependencies come from the system site-packages:
    # no network, no build isolation.
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         str(source)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    if install.returncode != 0:
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", str(source)],
            env=env, capture_output=True, text=True, timeout=240,
        )
    assert install.returncode == 0, install.stdout + install.stderr
    # The installed package, not the checkout, must be the one imported.
    where = subprocess.run(
        [str(python), "-c", "import adapto_ops, sys; print(adapto_ops.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout, where.stdout
    shutil.rmtree(source)  # nothing left to fall back on

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "X"
    proc = subprocess.run(
        [str(venv / "bin" / "adapto"), "render", "all", "-e", "production", "--out", str(out),
         "-i", str(INVENTORY)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "templates are missing" not in proc.stderr
    assert len([p for p in out.rglob("*") if p.is_file()]) == 5
    assert (out / "nginx" / f"{PRODUCTION.nginx.canonical_name}.conf").read_text().count(
        "server {"
    ) >= 2
