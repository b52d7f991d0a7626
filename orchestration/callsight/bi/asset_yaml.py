"""The one way an asset file under superset/assets is written: its leading comment lines, then the
compact form as YAML in a fixed style, so that writing what was read gives the same bytes.

Style: mappings and lists in block style, except a mapping or list of plain values (or an empty one)
below a top-level key's mapping, which stays on one line where that line fits in 120 characters; text with line
breaks as a literal block; long text never folded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

LINE = 120
_NO_WRAP = 1_000_000


class _Flow(dict):
    """A mapping written on one line."""


class _FlowList(list):
    """A list written on one line."""


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.split("\n")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _block_dict(dumper: yaml.SafeDumper, value: dict) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=False)


def _block_list(dumper: yaml.SafeDumper, value: list) -> yaml.SequenceNode:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=False)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(dict, _block_dict)
_Dumper.add_representer(list, _block_list)
_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list) and not (isinstance(value, str) and "\n" in value)


def _one_line(value: dict | list) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=_NO_WRAP)
    return text.strip()


def _styled(value: Any, col: int, prefix: int, level: int) -> Any:
    """Pure: value with the collections that go on one line marked. `col`: the column of its keys or
    of its items' "- "; `prefix`: how much of the line comes before it; `level`: 0 for the document,
    1 for a top-level key's value (a mapping there is always a block: params, extra, metadata)."""
    if isinstance(value, dict):
        if level >= 2 and all(_scalar(v) for v in value.values()) and prefix + len(_one_line(value)) <= LINE:
            return _Flow(value)
        # A mapping's mapping is indented by two; a mapping's list is not (its "- " at the key's column).
        return {
            k: _styled(v, col + 2 if isinstance(v, dict) else col, col + len(str(k)) + 2, level + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        if level >= 1 and all(_scalar(v) for v in value) and prefix + len(_one_line(value)) <= LINE:
            return _FlowList(value)
        return [_styled(v, col + 2, col + 2, level + 1) for v in value]
    return value


def dump_compact(data: dict, comment: str = "") -> str:
    """The text of an asset file: `comment` (its leading '#' lines, kept as they are) and the data."""
    body = yaml.dump(
        _styled(data, 0, 0, 0),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=_NO_WRAP,
        default_flow_style=False,
    )
    return comment + body


def leading_comment(text: str) -> str:
    """Pure: the '#' lines at the top of a file, each with its line break."""
    out = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file holds it already; True when written."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def normalise(path: Path) -> bool:
    """Rewrite one asset file in the canonical form (same data, same leading comments); True if it changed."""
    text = path.read_text(encoding="utf-8")
    return write_if_changed(path, dump_compact(yaml.safe_load(text), leading_comment(text)))


if __name__ == "__main__":  # python -m callsight.bi.asset_yaml FILE...: a new asset file in the canonical form
    import sys

    for arg in sys.argv[1:]:
        if normalise(Path(arg)):
            print(f"rewritten: {arg}")
