"""YAML loading that remembers where every key and item stood (for ``file:line`` errors).

Mappings load as :class:`LDict` and sequences as :class:`LList`; both are the plain types
with a ``line`` (where the node starts) and ``lines`` (where each key or item starts).
Duplicate keys are an error here, not silently the last one wins as in plain PyYAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mapper.core.errors import SpecError


class LDict(dict):  # type: ignore[type-arg]
    """A dict that knows the line of each key (1-based)."""

    line: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class LList(list):  # type: ignore[type-arg]
    """A list that knows the line of each item (1-based)."""

    line: int = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.lines[index] if index < len(self.lines) else self.line


class _Loader(yaml.SafeLoader):
    path = "<string>"


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LDict:
    loader.flatten_mapping(node)
    out = LDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool):
            raise SpecError(f"{loader.path}:{line}: a key must be a plain value")
        if key in out:
            raise SpecError(
                f"{loader.path}:{line}: duplicate key {key!r} (first at line {out.lines[key]})"
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LList:
    out = LList()
    out.line = node.start_mark.line + 1
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.lines.append(item.start_mark.line + 1)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_yaml(text: str, path: str = "<string>") -> Any:
    """Parse YAML text; syntax errors become :class:`SpecError` with ``path:line:col``."""
    loader_cls = type("_PathLoader", (_Loader,), {"path": path})
    try:
        return yaml.load(text, Loader=loader_cls)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = err.problem or err.context or "invalid YAML"
        raise SpecError(f"{where}: YAML syntax error: {problem}") from err
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: YAML error: {err}") from err


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file; unreadable files are a :class:`SpecError` too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise SpecError(f"{p}: no such file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{p}: cannot read: {err}") from err
    return load_yaml(text, str(p))
