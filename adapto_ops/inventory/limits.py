"""Bounds on how much work reading an inventory may cost, whatever the file says.

An inventory can arrive in a pull request and be read by CI. YAML aliases let
seven short lines stand for hundreds of thousands of nodes (the "billion
laughs"): PyYAML shares the aliased objects, but everything that walks the
result afterwards (pydantic, the duplicate-key check) pays for every copy.
So the composer counts, while it composes, how many nodes the document
stands for once every alias is expanded, and how deep it nests once expanded,
and stops at the first alias or collection that passes a bound. The work done
before stopping is proportional to the file, not to its expansion.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1024 * 1024  # a real inventory is a few KiB
MAX_EXPANDED_NODES = 100_000  # the repository's inventory expands to a few hundred
MAX_DEPTH = 64  # the model nests five levels deep; 64 leaves room for anything sane


class LimitExceeded(Exception):
    """The document passes one of the bounds; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def line_at_byte_limit(text: str) -> int:
    """The line on which the text passes :data:`MAX_BYTES` (for the error message)."""
    return text.encode("utf-8")[:MAX_BYTES].count(b"\n") + 1


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses documents that expand past the bounds."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        # Nodes the document stands for so far, aliases counted at their full size.
        self._expanded = 0
        self._aliases = 0
        self._depth = 0
        # Expanded size and height of each finished anchored node, by id(node);
        # an anchor still being composed is absent (an alias to it is recursive).
        self._sizes: dict[int, int] = {}
        self._heights: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            return self._count_alias(node, mark.line + 1)
        event = self.peek_event()
        line = event.start_mark.line + 1
        collection = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if collection:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise LimitExceeded(
                    line, f"the document nests deeper than {MAX_DEPTH} levels here")
        before = self._expanded
        node = super().compose_node(parent, index)
        self._expanded += 1
        self._check_size(line)
        if collection:
            self._depth -= 1
        self._sizes[id(node)] = self._expanded - before
        self._heights[id(node)] = 1 + max(
            (self._heights.get(id(child), 1) for child in _children(node)), default=0)
        return node

    def _count_alias(self, node: yaml.Node, line: int) -> yaml.Node:
        size = self._sizes.get(id(node))
        if size is None:
            raise LimitExceeded(line, "an alias refers to the anchor it is inside of "
                                      "(a recursive document)")
        self._expanded += size
        self._aliases += 1
        self._check_size(line)
        if self._depth + self._heights[id(node)] > MAX_DEPTH:
            raise LimitExceeded(
                line, f"this alias makes the document nest deeper than {MAX_DEPTH} levels")
        return node

    def _check_size(self, line: int) -> None:
        if self._expanded > MAX_EXPANDED_NODES:
            if self._aliases:
                raise LimitExceeded(
                    line, f"aliases here expand the document past {MAX_EXPANDED_NODES:,} "
                          "nodes (nested aliases, a 'billion laughs')")
            raise LimitExceeded(line, f"the document passes {MAX_EXPANDED_NODES:,} values here")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
