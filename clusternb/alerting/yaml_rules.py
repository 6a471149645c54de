"""YAML rules files: PyYAML's ``SafeLoader`` held to the limits of :mod:`clusternb.alerting.parsing`.

A module of its own so that PyYAML is imported only when a YAML text is parsed: the agent imports the rules
machinery at start, usually to read no file at all, and PyYAML would add about 1 MiB to its RSS. The limits,
and why each exists, are described in :mod:`clusternb.alerting.parsing`.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from clusternb.alerting.parsing import KEYS_MAX, too_much
from clusternb.alerting.rules import RuleError
from clusternb.arguments import shown

_MERGE = "tag:yaml.org,2002:merge"


def parse_yaml_text(text: str) -> Any:
    """The document in ``text``, read with ``yaml.safe_load``'s rules plus the limits of a rules file."""
    loader = _RulesLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise RuleError(f"not valid YAML: {_one_line(exc)}") from None
    except (yaml.YAMLError, ValueError) as exc:  # a constructor's own ValueError: an int of 5,000 digits
        raise RuleError(f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


class _RulesLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts nesting while composing and checks each mapping's keys once."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._values = 0
        self._checked: set[yaml.MappingNode] = set()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        problem = too_much(self._depth, self._values)
        tag = getattr(event, "tag", None)
        if not problem and tag not in (None, "!"):  # "!" is YAML's plain "not resolved": a string
            written = tag.replace("tag:yaml.org,2002:", "!!", 1)
            problem = f"the tag {shown(written)} is not accepted: a rules file needs no tags"
        if problem:
            raise ComposerError(None, None, problem, event.start_mark)
        self._depth += 1
        self._values += 1
        try:
            node = super().compose_node(parent, index)
            assert node is not None  # the base class returns None only at the end of the stream
            return node
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Called before a mapping is built, and on each mapping merged into another before it is merged, so
        # the first call sees the keys as written (later ones see merged keys, which may repeat legitimately).
        if node not in self._checked:
            self._checked.add(node)
            seen: set[tuple[str, Any]] = set()
            for key, _ in node.value:
                if key.tag == _MERGE or not isinstance(key, yaml.ScalarNode):
                    continue  # a merge key may repeat; a non-scalar key is refused by the constructor
                if (key.tag, key.value) in seen:
                    where = "while constructing a mapping"
                    raise ConstructorError(where, node.start_mark, f"duplicate key {shown(key.value)}", key.start_mark)
                seen.add((key.tag, key.value))
        super().flatten_mapping(node)
        if len(node.value) > KEYS_MAX:
            raise ConstructorError(None, None, f"a mapping with more than {KEYS_MAX} keys", node.start_mark)


def _one_line(exc: yaml.MarkedYAMLError) -> str:
    # PyYAML's str() spans several lines and quotes the source; a log line or a 400 wants one.
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem
