"""Errors that say what to do, the starter's sandbox environment, derived sandbox hosts.

Fast: nothing here starts a daemon. The only network contact is a refused TCP
connection to 127.0.0.213 (this module's loopback slot), port 1.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from adapto_ops.errors import InventoryError
from adapto_ops.inventory.derived import (
    derive_hosts,
    forget_count,
    read_count,
    state_file,
    write_count,
)
from adapto_ops.inventory.loader import load_inventory, parse_inventory
from adapto_ops.procedures.init import starter_inventory
from tests.e2e_support import adapto, said, tools_missing

ADDRESS = "127.0.0.213"


def new_project(tmp_path: Path, **options: str) -> Path:
    """`adapto init` in ``tmp_path`` with production and the sandbox on our slot."""
    args = ["init", str(tmp_path / "inventory.yaml"), "--project", "shop",
            "--address", ADDRESS, "--sandbox-address", ADDRESS,
            "--sandbox-dir", str(tmp_path / "sbx")]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", value]
    result = adapto(*args)
    assert result.returncode == 0, said(result)
    return tmp_path / "inventory.yaml"


def error_line(result: object) -> str:
    """The one line a failed command printed; no traceback."""
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


# --- item 6: the starter inventory has a sandbox --------------------------------------


def test_starter_has_a_sandbox_mirroring_production(tmp_path: Path) -> None:
    from adapto_ops.sandbox.lifecycle import sandbox_hosts

    path = tmp_path / "inventory.yaml"
    path.write_text(starter_inventory(project="shop", domain="shop.example.com",
                                      address="198.51.100.7"))
    loaded = load_inventory(path)
    prod, sbx = loaded.environment("production"), loaded.environment("sandbox")
    assert sbx.sandbox is not None and prod.sandbox is None
    # The same sources and commands as production; only where things run differs.
    assert sbx.frontend == prod.frontend
    assert sbx.backend.model_dump(exclude={"bind"}) == prod.backend.model_dump(exclude={"bind"})
    assert sbx.hosts[0].address == "127.0.0.2"
    assert sbx.paths.root == "/var/tmp/adapto-sandbox/shop/{host}/app"
    assert set(prod.secrets.names) <= set(sbx.secrets.names)
    # Valid for `sandbox up`: loopback, folders of its own, short enough PM2 socket path.
    [host] = sandbox_hosts(loaded, "sandbox")
    assert host.root == Path("/var/tmp/adapto-sandbox/shop/sandbox1/app")


def test_init_refuses_a_sandbox_address_off_loopback(tmp_path: Path) -> None:
    result = adapto("init", str(tmp_path / "inventory.yaml"), "--sandbox-address", "10.0.0.5")
    assert result.returncode == 2
    assert "--sandbox-address 10.0.0.5: not in 127.0.0.0/8" in error_line(result)
    assert not (tmp_path / "inventory.yaml").exists()


# --- item 7: every -e sandbox command says the sandbox is down --------------------------


@pytest.fixture(scope="module")
def never_up(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new project whose sandbox was never brought up (shared: the commands change nothing)."""
    return new_project(tmp_path_factory.mktemp("never-up"))


@pytest.mark.parametrize("command", [
    ["deploy", "all", "--yes"], ["deploy", "backend", "--yes", "--dry-run"], ["status"],
    ["health"], ["logs", "backend"], ["recover", "backend", "--yes"], ["releases"],
    ["rollback", "--yes"],
])
def test_commands_on_a_sandbox_that_is_down_name_sandbox_up(never_up: Path,
                                                           command: list[str]) -> None:
    inventory, tmp_path = never_up, never_up.parent
    result = adapto(*command, "-e", "sandbox", "-i", str(inventory), timeout=60)
    assert result.returncode == 1, said(result)
    line = error_line(result)
    assert line.endswith(f"sandbox 'sandbox' is down: sandbox1 ({ADDRESS}:2222) not running; "
                         f"start it with `adapto sandbox up -e sandbox -i {inventory}`"), line
    assert not (tmp_path / "sbx").exists()  # nothing was made on the way


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    inventory = new_project(tmp_path)
    text = inventory.read_text().replace("key_file: ~/.ssh/id_ed25519",
                                         f"key_file: {tmp_path}/no-such-key")
    inventory.write_text(text)
    result = adapto("releases", "-e", "production", "-i", str(inventory), timeout=60)
    assert result.returncode == 2, said(result)
    line = error_line(result)
    assert f"cannot read key_file {tmp_path}/no-such-key: No such file or directory" in line
    assert "ssh-keygen -t ed25519 -f" in line


def test_refused_connection_says_what_to_check(tmp_path: Path) -> None:
    inventory = new_project(tmp_path)
    (tmp_path / "key").write_text("not used: the connection is refused first\n")
    text = inventory.read_text().replace("key_file: ~/.ssh/id_ed25519",
                                         f"key_file: {tmp_path}/key").replace(
        "        port: 22\n", "        port: 1\n", 1)
    inventory.write_text(text)
    result = adapto("releases", "-e", "production", "-i", str(inventory), timeout=60)
    assert result.returncode == 1, said(result)
    line = error_line(result)
    assert f"root@{ADDRESS}:1 (web1): unreachable (" in line
    assert "check the host's address and port, and that sshd runs there" in line


def test_unreadable_secrets_file_is_named(tmp_path: Path) -> None:
    inventory = new_project(tmp_path)
    secrets = tmp_path / ".secrets" / "production.env"
    secrets.parent.mkdir()
    secrets.write_bytes(b"DATABASE_URL=\xff\xfe\n")
    result = adapto("deploy", "backend", "-e", "production", "-i", str(inventory), "--yes",
                    timeout=60)
    assert result.returncode == 2, said(result)
    assert error_line(result) == (
        f"error: {secrets}: cannot read the secrets file: not UTF-8 text; fix it "
        "(one NAME=value per line) or point secrets.file elsewhere")


def test_an_inventory_that_is_a_folder_is_named(tmp_path: Path) -> None:
    result = adapto("status", "-e", "production", "-i", str(tmp_path))
    assert result.returncode == 2, said(result)
    assert error_line(result) == (f"error: {tmp_path}: cannot read the inventory: Is a "
                                  "directory; point -i (or $ADAPTO_INVENTORY) at the inventory "
                                  "file")


@pytest.mark.skipif(os.geteuid() != 0 or bool(tools_missing()), reason="sandbox tools, root")
def test_sandbox_up_under_a_file_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    inventory = new_project(tmp_path, sandbox_dir=str(blocker))
    result = adapto("sandbox", "up", "-i", str(inventory), timeout=60)
    assert result.returncode == 1, said(result)
    assert error_line(result) == (
        f"error: sandbox1: sandbox up: Not a directory on {blocker}/shop/sandbox1; check that "
        "path and the host's sandbox folders in the inventory")


def test_last_resort_names_the_command_the_file_and_the_errno(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from adapto_ops.cli.common import run

    app = typer.Typer()

    @app.command()
    def boom() -> None:
        def body() -> None:
            raise PermissionError(errno.EACCES, "Permission denied", "/srv/x.pem")

        run(body)

    @app.command()
    def other() -> None:  # two commands, so typer names them
        pass

    monkeypatch.setattr("sys.argv", ["adapto", "boom", "--flag"])
    result = CliRunner().invoke(app, ["boom"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: adapto boom: Permission denied on /srv/x.pem (errno 13); check that path and "
        "its permissions, then run it again (-v shows where it happened)")


# --- item 7: hosts derived from the first one -----------------------------------------


def sandbox_env(tmp_path: Path, text_change: tuple[str, str] = ("", "")) -> Path:
    text = starter_inventory(project="shop", domain="shop.example.com", address="198.51.100.7",
                             sandbox_address="127.0.0.211")
    path = tmp_path / "inventory.yaml"
    path.write_text(text.replace(*text_change) if text_change[0] else text)
    return path


def test_derive_hosts_next_address_and_name(tmp_path: Path) -> None:
    loaded = parse_inventory(sandbox_env(tmp_path).read_text(), tmp_path / "inventory.yaml")
    env = derive_hosts(loaded.environment("sandbox"), "sandbox", 3, "inv")
    assert [(h.name, h.address, h.port) for h in env.hosts] == [
        ("sandbox1", "127.0.0.211", 2222), ("sandbox2", "127.0.0.212", 2222),
        ("sandbox3", "127.0.0.213", 2222)]
    assert env.hosts[2].key_file == env.hosts[0].key_file
    with pytest.raises(InventoryError, match="at most 16"):
        derive_hosts(loaded.environment("sandbox"), "sandbox", 17, "inv")
    with pytest.raises(InventoryError, match="no `sandbox:` section"):
        derive_hosts(loaded.environment("production"), "production", 2, "inv")


def test_derive_hosts_needs_folders_of_their_own(tmp_path: Path) -> None:
    path = sandbox_env(tmp_path, ("root: /var/tmp/adapto-sandbox/shop/{host}/app",
                                  "root: /var/tmp/adapto-sandbox/shop/app"))
    loaded = parse_inventory(path.read_text(), path)
    with pytest.raises(InventoryError, match=r"paths.root of environment 'sandbox' must "
                                             r"contain \{host\}"):
        derive_hosts(loaded.environment("sandbox"), "sandbox", 2, "inv")


def test_persisted_count_is_read_by_the_loader_and_forgotten(tmp_path: Path) -> None:
    path = sandbox_env(tmp_path)
    assert read_count(tmp_path, "sandbox") is None
    assert write_count(tmp_path, "sandbox", 2) == state_file(tmp_path, "sandbox")
    assert state_file(tmp_path, "sandbox") == tmp_path / ".adapto/sandbox/sandbox/hosts"
    loaded = load_inventory(path)
    sbx = loaded.environment("sandbox")
    assert [h.name for h in sbx.hosts] == ["sandbox1", "sandbox2"]
    assert len(loaded.environment("production").hosts) == 1
    # Per host, {host} gives the derived one folders of its own.
    from adapto_ops.sandbox.lifecycle import sandbox_hosts

    roots = [str(sh.root) for sh in sandbox_hosts(loaded, "sandbox")]
    assert roots == ["/var/tmp/adapto-sandbox/shop/sandbox1/app",
                     "/var/tmp/adapto-sandbox/shop/sandbox2/app"]
    assert forget_count(tmp_path, "sandbox") and not forget_count(tmp_path, "sandbox")
    assert len(load_inventory(path).environment("sandbox").hosts) == 1


def test_a_bad_count_file_is_named(tmp_path: Path) -> None:
    path = sandbox_env(tmp_path)
    state_file(tmp_path, "sandbox").parent.mkdir(parents=True)
    state_file(tmp_path, "sandbox").write_text("two\n")
    with pytest.raises(InventoryError, match=r"hosts: expected a host count from 1 to 16, "
                                             r"found 'two'; delete the file or run `adapto "
                                             r"sandbox down -e sandbox`"):
        load_inventory(path)
