"""YAML loading that remembers where every key and item stood (for ``file:line`` errors).

Mappings load as :class:`LDict` and sequences as :class:`LList`; both are the plain types
with a ``line`` (where the node starts) and ``lines`` (where each key or item starts).
Duplicate keys are an error here, not silently the last one wins as in plain PyYAML.

Hostile YAML is answered with one SpecError, not with memory or a RecursionError: aliases
may be used (``<<: *defaults`` is honest YAML), but the document they expand to is capped at
:data:`MAX_NODES` nodes (a "billion laughs" bomb of nine aliases to nine lists expands to
10^9), a recursive alias is refused, and so is nesting deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mapper.core.errors import SpecError
from mapper.core.files import BoundedReadError, read_bounded

#: The most nodes a spec may expand to, aliases followed. A large real spec has a few thousand.
MAX_NODES = 100_000
#: The deepest nesting a spec may have (a real one is under 10 deep).
MAX_DEPTH = 100


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
    # Merge keys (``<<: *base``): the mapping's own keys override merged ones, and among merged
    # mappings the first one to give a key wins (YAML's merge key rules). flatten_mapping puts
    # the merged pairs first, ordered so that the pair to keep comes last; only two of the
    # mapping's *own* keys are a duplicate.
    own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)
    out = LDict()
    out.line = node.start_mark.line + 1
    own_keys: set[Any] = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool):
            raise SpecError(f"{loader.path}:{line}: a key must be a plain value")
        if id(key_node) in own:
            if key in own_keys:
                raise SpecError(
                    f"{loader.path}:{line}: duplicate key {key!r} (first at line {out.lines[key]})"
                )
            own_keys.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


#: An integer with more digits than this is a typo, not a number (Python refuses to read one of
#: over 4,300 digits at all, and nothing latmap reads needs more than 20).
MAX_INT_DIGITS = 100


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    digits = sum(c.isdigit() for c in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise SpecError(f"{loader.path}:{node.start_mark.line + 1}: a number of {digits:,} digits; "
                        f"not a value latmap can use")
    return int(loader.construct_yaml_int(node))


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LList:
    out = LList()
    out.line = node.start_mark.line + 1
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.lines.append(item.start_mark.line + 1)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)
_Loader.add_constructor("tag:yaml.org,2002:int", _int)


def _check_size(root: yaml.Node, path: str) -> None:
    """Refuse a node graph that expands (aliases followed) beyond :data:`MAX_NODES` nodes or
    :data:`MAX_DEPTH` levels, or that contains itself. Linear in the nodes written: the
    expanded size of a shared (aliased) node is computed once."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    # Iterative post-order walk: a deep document must not exhaust Python's stack here.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            depths[key] = 1 + max((depths[id(c)] for c in children), default=0)
            if sizes[key] > MAX_NODES:
                line = node.start_mark.line + 1
                raise SpecError(f"{path}:{line}: the document expands to more than {MAX_NODES} values "
                                "(aliases followed): refused (a YAML alias bomb?)")
            if depths[key] > MAX_DEPTH:
                raise SpecError(f"{path}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise SpecError(f"{path}:{node.start_mark.line + 1}: a recursive alias (a node that contains itself)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def load_yaml(text: str, path: str = "<string>") -> Any:
    """Parse YAML text; syntax errors become :class:`SpecError` with ``path:line:col``;
    documents too large, too deep or recursive are refused before anything is built."""
    loader_cls = type("_PathLoader", (_Loader,), {"path": path})
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, path)
        return loader.construct_document(node)
    except RecursionError as err:  # the parser's own recursion, before _check_size can look
        raise SpecError(f"{path}: nested too deeply to read") from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = err.problem or err.context or "invalid YAML"
        raise SpecError(f"{where}: YAML syntax error: {problem}") from err
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: YAML error: {str(err)[:200]}") from err
    finally:
        loader.dispose()


#: A spec larger than this is refused before it is parsed (``-c /dev/zero`` must not eat the memory).
MAX_FILE_BYTES = 16 << 20


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file; unreadable or oversized files are a :class:`SpecError` too."""
    p = Path(path)
    try:
        text = read_bounded(p, MAX_FILE_BYTES, "stream spec").decode("utf-8")
    except FileNotFoundError as err:
        raise SpecError(f"{p}: no such file") from err
    except BoundedReadError as err:
        raise SpecError(str(err)) from err
    except UnicodeDecodeError as err:
        raise SpecError(f"{p}: cannot read: {err}") from err
    return load_yaml(text, str(p))
