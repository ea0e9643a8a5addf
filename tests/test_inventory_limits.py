"""Inventory reader limits: nested aliases, deep nesting and huge files are refused fast.

The billion-laughs documents are the ones from issue 9 (seven lines of nested
aliases) and one level deeper (nine times the expansion). Before the limits,
reading the seven-line one kept `adapto render` busy for seconds; now each is
refused in milliseconds, with the file and the line of the alias that passed
the bound.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from adapto_ops.errors import InventoryError
from adapto_ops.inventory import load_inventory, parse_inventory
from adapto_ops.inventory.limits import MAX_BYTES, MAX_DEPTH, MAX_EXPANDED_NODES
from tests.e2e_support import adapto, said

REPO = Path(__file__).resolve().parent.parent
BASE_TEXT = (REPO / "inventory.yaml").read_text(encoding="utf-8")


def laughs(levels: int) -> str:
    """``levels`` lines, each a list of nine aliases of the line before (the first: strings)."""
    names = "abcdefghijklmnop"
    lines = [f'{names[0]}: &{names[0]} [{", ".join(["lol"] * 9)}]']
    for i in range(1, levels):
        lines.append(f"{names[i]}: &{names[i]} [{', '.join(['*' + names[i - 1]] * 9)}]")
    return "\n".join(lines) + "\n"


def refused(text: str, tmp: Path | None = None) -> tuple[str, float]:
    start = time.perf_counter()
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, Path("inv.yaml"))
    return caught.value.message, time.perf_counter() - start


@pytest.mark.parametrize("levels", [7, 8, 12])
def test_nested_aliases_are_refused_at_once_naming_the_line(levels: int) -> None:
    message, seconds = refused(laughs(levels))
    assert seconds < 1.0
    # 9**5 * 9 strings pass 100,000 on line 6; the first five lines expand to 9**5 = 59,049.
    assert message.startswith("inv.yaml:6: "), message
    assert "alias" in message and "\n" not in message


@pytest.mark.parametrize("levels", [7, 8])
def test_cli_answers_nested_aliases_with_exit_2_and_file_line(tmp_path: Path,
                                                              levels: int) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs(levels))
    # The baseline: the same command refusing a one-line YAML syntax error (start-up,
    # imports, the error path), so only the aliases' own cost is compared.
    plain = tmp_path / "syntax.yaml"
    plain.write_text("project: [\n")
    baseline_start = time.perf_counter()
    adapto("render", "-i", str(plain), "-e", "x")
    baseline = time.perf_counter() - baseline_start
    start = time.perf_counter()
    result = adapto("render", "-i", str(path), "-e", "x")
    elapsed = time.perf_counter() - start
    assert result.returncode == 2, said(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, said(result)
    assert re.match(rf"error: {re.escape(str(path))}:6: ", errors[0]), said(result)
    assert elapsed < baseline + 1.0, (elapsed, baseline)


def test_expansion_just_under_the_bound_is_read() -> None:
    # Five levels expand to 9**5 = 59,049 strings: under the bound, so it is read (and
    # then rejected by the model for its missing and unknown keys, a different error).
    with pytest.raises(InventoryError) as caught:
        parse_inventory(laughs(5), Path("inv.yaml"))
    assert "refused" not in caught.value.message
    assert any("is not a known field" in line for line in caught.value.lines())
    assert 9 ** 5 < MAX_EXPANDED_NODES < 9 ** 6


def test_normal_inventory_with_a_few_aliases_loads() -> None:
    text = BASE_TEXT.replace("      roles: [web, backend]",
                             "      roles: &roles [web, backend]", 1)
    text = text.replace("    frontend:\n", "    frontend: &front\n", 1)
    assert "&roles" in text and "&front" in text
    # A second environment reusing the first one's sections by alias.
    text += (
        "  copy:\n"
        "    hosts:\n"
        "      - {name: c1, address: 127.0.0.9, port: 2222, user: root, roles: *roles}\n"
        "    frontend: *front\n"
        "    backend:\n"
        "      source: reference/backend\n"
        "      kind: python\n"
        "      start: uvicorn app:app --port {port}\n"
        "    paths: {root: /srv/copy}\n"
        "    nginx: {server_names: [copy.test], tls: {mode: self-signed}}\n"
    )
    loaded = parse_inventory(text, Path("inv.yaml"))
    copy = loaded.inventory.environments["copy"]
    assert copy.hosts[0].roles == loaded.inventory.environments["production"].hosts[0].roles
    assert copy.frontend == loaded.inventory.environments["production"].frontend


def nested(depth: int) -> str:
    return "project: x\nextra: " + "[" * depth + "1" + "]" * depth + "\n"


def test_deep_nesting_is_refused_naming_the_line() -> None:
    message, seconds = refused(nested(MAX_DEPTH + 10))
    assert seconds < 1.0
    assert message.startswith("inv.yaml:2: ") and "deeper than 64" in message, message


def test_nesting_within_the_bound_is_read() -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(nested(MAX_DEPTH - 2), Path("inv.yaml"))
    assert "refused" not in caught.value.message  # the model's complaint, not the limit's


def test_alias_that_deepens_past_the_bound_is_refused() -> None:
    # Each part nests 40 levels, under the bound; the alias puts one inside the other.
    half = "[" * 40 + "1" + "]" * 40
    text = f"project: x\na: &a {half}\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n"
    message, _ = refused(text)
    assert message.startswith("inv.yaml:3: ") and "alias" in message, message


def test_recursive_alias_is_refused() -> None:
    message, _ = refused("project: x\na: &a [1, *a]\n")
    assert message.startswith("inv.yaml:2: ") and "recursive" in message, message


def test_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    comment = "# " + "x" * 97 + "\n"  # 100 bytes a line
    path.write_text(BASE_TEXT + comment * (MAX_BYTES // 100 + 10))
    start = time.perf_counter()
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert time.perf_counter() - start < 1.0
    over = BASE_TEXT.encode().count(b"\n") + (MAX_BYTES - len(BASE_TEXT.encode())) // 100 + 1
    assert caught.value.message.startswith(f"{path}:{over}: "), caught.value.message
    assert "1024 KiB" in caught.value.message


def test_many_plain_values_are_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapto_ops.inventory import limits

    # A smaller bound keeps the test fast; the counting is the same.
    monkeypatch.setattr(limits, "MAX_EXPANDED_NODES", 1000)
    text = "project: x\nextra:\n" + "".join(f"  - {i}\n" for i in range(2000))
    message, _ = refused(text)
    assert "passes 1,000 values" in message and "alias" not in message, message
    # project, x and extra are nodes 1-3; item k (line 3 + k) is node 4 + k: the
    # 1,001st node is item 997, on line 1000 (the list itself counts once it closes).
    assert message.startswith("inv.yaml:1000: "), message
