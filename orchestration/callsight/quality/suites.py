"""Great Expectations suites (data_quality/suites/*.yml): their definitions, loaded and refused by name.

A suite is a readable YAML file: the Dagster asset it checks, its stage (`raw`: before dbt, the raw
store only; `warehouse`: after dbt, the build file with the raw store attached as `raw`) and batches.
A batch is one SQL query whose result Great Expectations validates with the listed expectations
(standard GX expectation types and arguments). Referential and reconciliation checks are batches too:
a query returning the violating rows with `expect_table_row_count_to_equal: 0`, or a one-row query of
counts with `expect_column_pair_values_to_be_equal`.

A batch may be validated in parts (and incrementally) when its expectations hold for a table exactly
when they hold for every part of it: row-wise ("map") checks, whose unexpected counts add up; column
checks, which every part answers alike; uniqueness, when the parts split the rows by its key (ranges of
the key's first column). Anything else (row counts, aggregates, `mostly`) needs the whole batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callsight.site.settings import REPO_ROOT

SUITES_DIR = REPO_ROOT / "data_quality" / "suites"
SCHEMA_TYPES = ("expect_table_columns_to_match_ordered_list", "expect_table_columns_to_match_set")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class SuiteError(ValueError):
    """A suite file is unusable; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _BatchFile(_Strict):
    name: str = Field(pattern=NAME_RE.pattern)
    description: str | None = None
    query: str = Field(min_length=1)
    expectations: list[dict[str, Any]] = Field(min_length=1)
    incremental: bool = False
    weeks: Literal["fct_calls", "fct_inbound_calls"] | None = None


class _SuiteFile(_Strict):
    suite: str = Field(pattern=NAME_RE.pattern)
    asset: str = Field(min_length=1)
    stage: Literal["raw", "warehouse"]
    description: str = Field(min_length=1)
    batches: list[_BatchFile] = Field(min_length=1)


@dataclass(frozen=True)
class ExpectationSpec:
    """One GX expectation: its type (e.g. expect_column_values_to_not_be_null) and arguments."""

    type: str
    kwargs: Mapping[str, Any]
    description: str | None = None

    @property
    def name(self) -> str:
        """Readable identity, e.g. `expect_column_values_to_be_between(talk_seconds, min_value=0)`."""
        args = [str(self.kwargs[k]) for k in ("column", "column_A", "column_B") if k in self.kwargs]
        for key, value in self.kwargs.items():
            if key in ("column", "column_A", "column_B", "column_list", "column_set"):
                continue
            text = repr(value) if not isinstance(value, list) or len(value) <= 6 else f"[{len(value)} values]"
            args.append(f"{key}={text}")
        return f"{self.type}({', '.join(args)})"


@dataclass(frozen=True)
class BatchSpec:
    """`incremental`: validated at night over the rows whose content has not passed yet; `weeks` (an
    incremental batch over a fact kept in week files, whose query returns its `call_date`): over the
    weeks the build computes anew instead. See quality.validated_rows."""

    name: str
    query: str
    expectations: tuple[ExpectationSpec, ...]
    description: str | None = None
    incremental: bool = False
    weeks: str | None = None


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    asset: tuple[str, ...]
    stage: Literal["raw", "warehouse"]
    description: str
    batches: tuple[BatchSpec, ...]
    path: Path


# Row-wise ("map") checks: their unexpected counts add up over the parts of a batch.
ROW_WISE_TYPES = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_match_regex",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
    }
)
KEYED_TYPES = {"expect_column_values_to_be_unique": "column", "expect_compound_columns_to_be_unique": "column_list"}


def partition_key(batch: BatchSpec) -> tuple[str, ...] | None:
    """Pure: how a batch may be validated in parts. `()`: in any parts (only row-wise and column
    checks); a key: in parts split by ranges of its first column (it checks uniqueness on that key);
    None: only whole."""
    keys = set()
    for e in batch.expectations:
        if "mostly" in e.kwargs:
            return None
        if e.type in KEYED_TYPES:
            value = e.kwargs.get(KEYED_TYPES[e.type])
            keys.add(tuple(value) if isinstance(value, list) else (value,))
        elif e.type not in ROW_WISE_TYPES and e.type not in SCHEMA_TYPES:
            return None
    if len(keys) > 1:
        return None
    return next(iter(keys), ())


def _expectation(entry: dict[str, Any], where: str) -> ExpectationSpec:
    entry = dict(entry)
    kind = entry.pop("type", None)
    if not isinstance(kind, str) or not kind.startswith("expect_"):
        raise SuiteError(f"{where}: each expectation needs `type: expect_...`")
    description = entry.pop("description", None)
    return ExpectationSpec(kind, entry, description)


def parse_suite(path: Path, data: object) -> SuiteSpec:
    """Pure: a suite definition from parsed YAML, refused with the file and entry named."""
    try:
        spec = _SuiteFile.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SuiteError(f"{path}: {errors}") from None
    batches = []
    seen: set[str] = set()
    for b in spec.batches:
        if b.name in seen:
            raise SuiteError(f"{path}: batch {b.name!r} defined twice")
        seen.add(b.name)
        expectations = tuple(_expectation(e, f"{path}: batch {b.name}") for e in b.expectations)
        batch = BatchSpec(b.name, b.query, expectations, b.description, b.incremental, b.weeks)
        if batch.incremental and partition_key(batch) is None:
            raise SuiteError(
                f"{path}: batch {b.name}: `incremental` needs row-wise expectations (and at most one unique key)"
            )
        if batch.weeks and not batch.incremental:
            raise SuiteError(f"{path}: batch {b.name}: `weeks` is for an `incremental` batch")
        batches.append(batch)
    return SuiteSpec(spec.suite, tuple(spec.asset.split("/")), spec.stage, spec.description, tuple(batches), path)


def load_suites(directory: Path = SUITES_DIR) -> list[SuiteSpec]:
    """Every suite under data_quality/suites, in file-name order."""
    suites = []
    for path in sorted(directory.glob("*.yml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SuiteError(f"{path}: not valid YAML: {exc}") from None
        suites.append(parse_suite(path, data))
    names = [s.name for s in suites]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SuiteError(f"{directory}: suite names used twice: {', '.join(duplicates)}")
    if not suites:
        raise SuiteError(f"{directory}: no suites found")
    return suites
