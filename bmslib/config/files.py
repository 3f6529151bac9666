"""Finding and reading the options file: JSON or YAML, strictly (a key given twice is an error)."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
import yaml.constructor
import yaml.nodes

from bmslib.config.option_reader import show
from bmslib.config.parse import parse_config
from bmslib.config.settings import AppConfig, TypeInfo, accept_any_algorithm
from bmslib.errors import ConfigError

#: Where :func:`load_config` looks when no path is given, in this order (relative paths: the CWD).
DEFAULT_SEARCH: Final = (Path("/data/options.json"), Path("options.yaml"), Path("options.json"))


def load_config(
    path: str | None,
    *,
    env: Mapping[str, str],
    types: Mapping[str, TypeInfo],
    search: Sequence[Path] = DEFAULT_SEARCH,
    validate_algorithm: Callable[[str], str | None] = accept_any_algorithm,
) -> AppConfig:
    """Read and validate the options file ``path``, or the first of ``search`` that exists.

    Raises :class:`ConfigError` when no file is found, the file cannot be read or parsed, or the
    options are invalid.
    """
    if path is not None:
        file = Path(path)
    else:
        found = next((p for p in search if _is_file(p)), None)
        if found is None:
            looked = ", ".join(str(p) for p in search)
            raise ConfigError([f"no configuration file found; looked in {looked}; "
                               "pass --config PATH or use --demo"])
        file = found
    data = read_options_file(file)
    return parse_config(data, source=str(file), env=env, types=types, validate_algorithm=validate_algorithm)


def read_options_file(path: Path) -> object:
    """The parsed content of an options file: JSON for ``*.json``, else YAML (of which JSON is a part).

    Duplicate keys are an error. Failures raise :class:`ConfigError` with one line naming the file,
    and for syntax errors the line and column; the offending text itself is not quoted (it may hold
    a password).
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if path.suffix.lower() == ".json":
        return _parse_json(text, path)
    return _parse_yaml(text, path)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return True  # it is there but we may not look: let reading it report why


def _parse_json(text: str, path: Path) -> object:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ConfigError([f"{path}: duplicate key {key!r}"])
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigError([f"{path}: {where}: invalid JSON: {exc.msg}"]) from None
    except (ValueError, RecursionError) as exc:  # a number too long to convert; nesting too deep
        raise ConfigError([f"{path}: invalid JSON: {_first_line(exc)}"]) from None


class _StrictLoader(yaml.SafeLoader):
    """The safe YAML loader, but a key given twice in one mapping is an error, not "last one wins"."""

    def construct_mapping(self, node: yaml.nodes.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        first_line: dict[object, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.nodes.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value
            if key in first_line:
                problem = f"duplicate key {show(key)} (first at line {first_line[key]})"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


def _parse_yaml(text: str, path: Path) -> object:
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
        raise ConfigError([f"{path}: {where}invalid YAML: {what}"]) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError([f"{path}: invalid YAML: {_first_line(exc)}"]) from None
    finally:
        loader.dispose()

