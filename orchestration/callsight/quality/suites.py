"""Great Expectations suites (data_quality/suites/*.yml) run against the raw store and a warehouse file.

A suite is a readable YAML file: the Dagster asset it checks, its stage (`raw`: before dbt, the raw
store only; `warehouse`: after dbt, the build file with the raw store attached as `raw`) and batches.
A batch is one SQL query whose result Great Expectations validates with the listed expectations
(standard GX expectation types and arguments). Referential and reconciliation checks are batches too:
a query returning the violating rows with `expect_table_row_count_to_equal: 0`, or a one-row query of
counts with `expect_column_pair_values_to_be_equal`.

The raw store and the warehouse are opened read-only; GX runs on pandas (an ephemeral context, nothing
written unless Data Docs are asked for). The nightly runs validate incremental batches over the rows
that have not passed yet and keep a record of what passed in a file of their own (row hashes, see
"incremental batches"). Results name every expectation, never a data value: they go to logs and mails.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callsight.journal.timezones import folds
from callsight.site.compaction import compact, scratch_paths
from callsight.site.policy import Policy
from callsight.site.settings import REPO_ROOT
from callsight.site.sql_text import quote_literal

DEFAULT_TIMEZONE = Policy().timezone
SUITES_DIR = REPO_ROOT / "data_quality" / "suites"
DOCS_SITE = "callsight"
SCHEMA_TYPES = ("expect_table_columns_to_match_ordered_list", "expect_table_columns_to_match_set")
# Results keep counts but no example values (they would end up in logs, mails and Data Docs).
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class SuiteError(ValueError):
    """A suite file is unusable; the message names the file and the entry."""


# ---- definitions ---------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _BatchFile(_Strict):
    name: str = Field(pattern=NAME_RE.pattern)
    description: str | None = None
    query: str = Field(min_length=1)
    expectations: list[dict[str, Any]] = Field(min_length=1)
    incremental: bool = False


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
    """`incremental`: validated at night over the rows whose content has not passed yet; see run_suites."""

    name: str
    query: str
    expectations: tuple[ExpectationSpec, ...]
    description: str | None = None
    incremental: bool = False


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    asset: tuple[str, ...]
    stage: Literal["raw", "warehouse"]
    description: str
    batches: tuple[BatchSpec, ...]
    path: Path


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
        batch = BatchSpec(b.name, b.query, expectations, b.description, b.incremental)
        if batch.incremental and partition_key(batch) is None:
            raise SuiteError(
                f"{path}: batch {b.name}: `incremental` needs row-wise expectations (and at most one unique key)"
            )
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


# ---- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpectationOutcome:
    suite: str
    batch: str
    expectation: str
    success: bool
    detail: str
    description: str | None = None

    def __str__(self) -> str:
        about = f" ({self.description})" if self.description else ""
        return f"{self.suite}.{self.batch}: {self.expectation}{about}: {self.detail}"


@dataclass(frozen=True)
class SuiteResult:
    suite: SuiteSpec
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


@dataclass(frozen=True)
class QualityReport:
    results: tuple[SuiteResult, ...]
    docs_index: Path | None = None
    warnings: tuple[str, ...] = ()  # what went wrong in recording what passed (the checks are unaffected)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for r in self.results for o in r.failed]

    def result(self, suite: str) -> SuiteResult:
        return next(r for r in self.results if r.suite.name == suite)

    @property
    def expectation_count(self) -> int:
        return sum(len(r.outcomes) for r in self.results)


def describe(kind: str, kwargs: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """Pure: what a GX result says, as counts and column names only (never data values)."""
    if "unexpected_count" in result:
        return f"{result['unexpected_count']} of {result.get('element_count')} rows unexpected"
    observed = result.get("observed_value")
    if kind in SCHEMA_TYPES and isinstance(observed, list):
        expected = list(kwargs.get("column_list") or kwargs.get("column_set") or [])
        missing = [c for c in expected if c not in observed]
        extra = [c for c in observed if c not in expected]
        if not missing and not extra:
            return "columns as expected" if observed == expected or kind.endswith("_set") else "column order differs"
        return f"missing columns {missing}, unexpected columns {extra}"
    if kind == "expect_table_row_count_to_equal" and isinstance(observed, int):
        return f"{observed} rows (expected {kwargs.get('value')})"
    if isinstance(observed, int | float) and not isinstance(observed, bool):
        return f"observed {observed}"
    return "observed value not shown" if observed is not None else ""


def counts_of_single_row(frame: Any, spec: ExpectationSpec) -> str:
    """Pure: for a one-row batch of counts (reconciliations), the integer columns the expectation
    compares, e.g. `fct_calls_rows=10303, raw_journal_rows=10302`. Empty for any other batch."""
    if len(frame) != 1:
        return ""
    columns = [spec.kwargs[k] for k in ("column", "column_A", "column_B") if k in spec.kwargs]
    values = []
    for c in columns:
        if c not in frame.columns or not str(frame[c].dtype).lower().startswith(("int", "uint")):
            return ""
        values.append(f"{c}={int(frame[c].iloc[0])}")
    return ", ".join(values)


def _error_text(exception_info: object) -> str:
    infos = exception_info.values() if isinstance(exception_info, dict) else [exception_info]
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "error").splitlines()[0][:200]
        if getattr(info, "raised_exception", False):
            return str(getattr(info, "exception_message", "error")).splitlines()[0][:200]
    return ""


def vectorisable(frame: Any) -> Any:
    """Pure: the frame with integer columns in the types GX's pandas engine compares vectorised (int64,
    float64). DuckDB hands INTEGER/SMALLINT over as int32/int16, or, where a column holds NULLs, as
    pandas' nullable Int32/Int16; for both GX's `column_values.between` calls Python once per value
    (5 s of 6 for fct_calls at 1M legs; fct_inbound_calls' batch, whose wait_seconds is NULL for missed
    calls, 13.3 -> 9.6 s at 10M legs). The values are unchanged: nullable ones become float64 with NaN
    for NULL (GX counts both as missing), exact for every integer of 32 bits or fewer. Nullable 64-bit
    integers stay as they are (a double would round them)."""
    import numpy as np
    import pandas as pd

    casts = {}
    for name, t in frame.dtypes.items():
        if t.kind not in "iu" or t.itemsize >= 8:
            continue
        if isinstance(t, np.dtype):
            casts[name] = np.int64
        elif isinstance(t, pd.api.extensions.ExtensionDtype):
            casts[name] = np.float64
    return frame.astype(casts) if casts else frame


# ---- running -------------------------------------------------------------------------------------
# The repeated local hours of the site's time zone (clocks going back), for expectations on local
# times: a TEMP table of every connection, one row per local day such an interval touches.
REPEATED_HOURS_TABLE = "repeated_hours"
REPEATED_HOURS_YEARS = (date(1970, 1, 1), date(2100, 12, 31))


def repeated_hour_rows(timezone: str) -> list[tuple[date, datetime, datetime]]:
    """Pure: (day, start, end) of every repeated local interval of `timezone`, once per day it touches."""
    rows = []
    for f in folds(timezone, *REPEATED_HOURS_YEARS):
        days = {f.start.date(), (f.end - timedelta(microseconds=1)).date()}
        rows += [(day, f.start, f.end) for day in sorted(days)]
    return rows


def connect(
    raw_db: Path, warehouse_db: Path | None = None, timezone: str = DEFAULT_TIMEZONE
) -> duckdb.DuckDBPyConnection:
    """Read-only: the warehouse file (if any) as the main database, the raw store attached as `raw`,
    and the TEMP table `repeated_hours` (day, start_local, end_local) of `timezone`."""
    for path in (raw_db, warehouse_db):
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{path}: no such DuckDB file")
    con = duckdb.connect(str(warehouse_db), read_only=True) if warehouse_db else duckdb.connect()
    con.execute(f"ATTACH {quote_literal(str(raw_db))} AS raw (READ_ONLY)")
    con.execute(f"CREATE TEMP TABLE {REPEATED_HOURS_TABLE} (day DATE, start_local TIMESTAMP, end_local TIMESTAMP)")
    rows = repeated_hour_rows(timezone)
    if rows:  # a zone without clock changes (UTC) has none
        con.executemany(f"INSERT INTO {REPEATED_HOURS_TABLE} VALUES (?, ?, ?)", rows)
    return con


def _gx_context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


# Expectations that hold for a table exactly when they hold for every part of it: the row-wise
# ("map") checks, whose unexpected counts add up over the parts, and the column checks, which every part
# answers alike. Uniqueness adds up too when the parts split the rows by their key (rows with the same
# key land in the same part: ranges of the key's first column). Anything else (row counts, aggregates,
# `mostly`) needs the whole batch.
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
# GX's pandas engine holds several copies of a batch: at 10M journal rows a whole batch took 7 GiB.
PART_ROWS = 500_000


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


def _ident(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def part_queries(query: str, column: str, bounds: Sequence[Any]) -> list[tuple[str, list[Any]]]:
    """Pure: the batch query split into ranges of one key column at the given (sorted, distinct)
    bounds, as (SQL, parameters): every row in exactly one part (rows without a key in the first), equal
    keys in the same part. A range filter reaches the table scan, so a part reads its share of the
    table, not all of it."""
    col = _ident(column)
    base = f"SELECT * FROM ({query}) AS batch WHERE "
    if not bounds:
        return [(query, [])]
    parts = [(base + f"{col} <= ? OR {col} IS NULL", [bounds[0]])]
    parts += [(base + f"{col} > ? AND {col} <= ?", [lo, hi]) for lo, hi in itertools.pairwise(bounds)]
    parts.append((base + f"{col} > ?", [bounds[-1]]))
    return parts


def _frames(con: duckdb.DuckDBPyConnection, batch: BatchSpec):
    """The batch as pandas frames of about PART_ROWS rows where its expectations allow it."""
    key = partition_key(batch)
    rows = con.execute(f"SELECT count(*) FROM ({batch.query}) AS batch").fetchone()[0] if key is not None else 0
    if key is None or rows <= PART_ROWS:
        yield vectorisable(con.execute(batch.query).df())
    elif key:
        # Equal keys share their first column: ranges of it keep every duplicate key in one part.
        n = -(-rows // PART_ROWS)
        col = _ident(key[0])
        quantiles = ", ".join(f"{i / n:.6f}" for i in range(1, n))
        (bounds,) = con.execute(
            f"SELECT quantile_disc({col}, [{quantiles}]) FROM ({batch.query}) AS batch WHERE {col} IS NOT NULL"
        ).fetchone()
        for sql, params in part_queries(batch.query, key[0], sorted(set(bounds or []))):
            yield vectorisable(con.execute(sql, params).df())
    else:
        result = con.execute(batch.query)
        while len(frame := result.fetch_df_chunk(max(1, PART_ROWS // 2048))):  # vectors of 2,048 rows
            yield vectorisable(frame)


def merge_results(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pure: one result from those of the parts of a batch: row-wise counts add up; column checks
    answer alike in every part (the first part's answer)."""
    if all("unexpected_count" in r for r in results):
        return {
            "element_count": sum(r.get("element_count") or 0 for r in results),
            "unexpected_count": sum(r["unexpected_count"] for r in results),
        }
    return dict(results[0])


def _validate_batch(
    context,
    suite: SuiteSpec,
    batch: BatchSpec,
    con: duckdb.DuckDBPyConnection,
    note: str = "",
):
    """The batch's outcomes; `note` is added to every detail."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    name = f"{suite.name}.{batch.name}"
    gx_suite = context.suites.add(gx.ExpectationSuite(name=name, meta={"description": batch.description or ""}))
    for i, e in enumerate(batch.expectations):
        gx_suite.add_expectation_configuration(
            ExpectationConfiguration(type=e.type, kwargs=dict(e.kwargs), description=e.description, meta={"index": i})
        )
    gx_suite.save()
    asset = context.data_sources.get("callsight").add_dataframe_asset(name)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=asset.add_batch_definition_whole_dataframe(name), suite=gx_suite)
    )
    parts: list[dict[int, Any]] = []  # per part: expectation index -> GX result
    row_counts = [""] * len(batch.expectations)  # the counts of a one-row batch, for failure details
    try:
        for frame in _frames(con, batch):
            validation = definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
            parts.append({r.expectation_config.meta["index"]: r for r in validation.results})
            # Only a whole batch of one row is a batch of counts: a filtered batch (`note`) of one row
            # holds a data row, whose values stay out of the details.
            if len(parts) == 1 and not note:
                row_counts = [counts_of_single_row(frame, e) for e in batch.expectations]
    except duckdb.Error as exc:
        # Catalog, binder and parser errors name tables and columns; others (conversions) can quote data.
        schema_level = isinstance(exc, duckdb.CatalogException | duckdb.BinderException | duckdb.ParserException)
        message = f": {str(exc).splitlines()[0][:200]}" if schema_level else ""
        reason = f"query failed: {type(exc).__name__}{message}"
        return tuple(
            ExpectationOutcome(suite.name, batch.name, e.name, False, reason, e.description) for e in batch.expectations
        )
    outcomes = []
    for i, e in enumerate(batch.expectations):
        results = [p[i] for p in parts if i in p]
        if not results or len(results) < len(parts):
            outcomes.append(ExpectationOutcome(suite.name, batch.name, e.name, False, "not evaluated", e.description))
            continue
        error = next((t for t in (_error_text(r.exception_info) for r in results) if t), "")
        success = all(r.success for r in results)
        merged = merge_results([r.result or {} for r in results])
        detail = f"could not be evaluated: {error}" if error else describe(e.type, e.kwargs, merged) + note
        if row_counts[i] and not success:
            detail += f" ({row_counts[i]})"
        outcomes.append(ExpectationOutcome(suite.name, batch.name, e.name, bool(success), detail, e.description))
    return tuple(outcomes)


# ---- incremental batches -----------------------------------------------------------------------
# A batch marked `incremental: true` knows its rows by their content: the hash of the batch's row, every
# column its expectations see. Its expectations are row-wise (and uniqueness), so a row with the content
# of a row that passed passes too, whatever wrote it, and a nightly run validates only the rows whose
# content has not passed yet: the extract's new and edited legs, the night's marts, and equally a row
# altered, added or copied behind the pipeline's back or by a build touching what it should not. A
# copy is found by its count (a hash now held by more rows than passed is due); a duplicate key by
# validating, with every due row, the rows sharing its unique key's first column. The record is a
# DuckDB file of its own (run_suites' `record_db`, attached read-write as RECORD_DB; hashes and counts,
# no values, compacted after each run that used it): per batch fingerprint a table of (row hash, rows)
# that passed, replaced each time the batch passes (dropping the batch's records under other
# fingerprints) and pruned of rows that went when it fails, and when every row was last validated
# (`validated_whole_at`). When that is older than REVALIDATE_AFTER, when at least WHOLE_BATCH_SHARE of
# the rows are due, or without a usable record (a warning), the batch is validated whole.
RECORD_DB = "validated_rows"
RECORD_BATCHES_DDL = f"""
CREATE TABLE IF NOT EXISTS {RECORD_DB}.batches (
    fingerprint VARCHAR PRIMARY KEY,
    batch VARCHAR NOT NULL,
    validated_whole_at TIMESTAMP NOT NULL,
    written_at TIMESTAMP NOT NULL
)
"""
# Nightly runs start at about the same time; with half a day of slack for start times, every batch is
# validated whole on the seventh night after it last was.
REVALIDATE_AFTER = timedelta(days=6, hours=12)
# Above this share of due rows a batch is validated whole (filtering would cost more than it saves).
WHOLE_BATCH_SHARE = 0.5
ROW_HASH_SQL = "hash(*COLUMNS(*))"
# TEMP tables on the validating connection: the batch's row hashes with their number of rows, those
# that are due, and the keys of the rows to validate (computed once, not per part of the batch).
ROW_COUNTS_TABLE = "_callsight_row_counts"
DUE_ROWS_TABLE = "_callsight_due_rows"
CHANGED_KEYS_TABLE = "_callsight_changed_keys"
INCREMENTAL_NOTE = " (rows new or changed since they last passed)"


def batch_fingerprint(suite: SuiteSpec, batch: BatchSpec, timezone: str, columns: Sequence[Any] = ()) -> str:
    """Pure: identity of what a batch checks; another query, expectation, time zone or result type
    (`columns`: the query's column names and types; a hash does not tell 1 from true) starts afresh."""
    import hashlib
    import json

    import great_expectations as gx

    spec = {
        "suite": suite.name,
        "batch": batch.name,
        "query": batch.query,
        "expectations": [[e.type, dict(e.kwargs)] for e in batch.expectations],
        "timezone": timezone,
        "columns": [list(map(str, c)) for c in columns],
        # the zone's rules as this machine's tz database has them (the checks read its repeated hours)
        "repeated_hours": repr(repeated_hour_rows(timezone)),
        "gx": gx.__version__,
        "duckdb": duckdb.__version__,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def changed_rows_sql(batch: BatchSpec) -> tuple[str, str | None]:
    """Pure: (query, keys): the query of the batch's rows whose hash is in the TEMP table DUE_ROWS_TABLE
    or whose key's first column is in CHANGED_KEYS_TABLE, and the query that fills that table: the key
    (first column) of every due row; None for a batch without a key."""
    due = f"{ROW_HASH_SQL} IN (SELECT row_hash FROM {DUE_ROWS_TABLE})"
    base = f"SELECT * FROM ({batch.query}) AS batch WHERE {due}"
    key = partition_key(batch)
    if not key:
        return base, None
    col = _ident(key[0])
    keys = f"SELECT DISTINCT {col} FROM ({batch.query}) AS batch WHERE {due} AND {col} IS NOT NULL"
    return f"{base} OR {col} IN (SELECT {col} FROM {CHANGED_KEYS_TABLE})", keys


def _scoped(batch: BatchSpec, con: duckdb.DuckDBPyConnection) -> BatchSpec:
    """The batch's rows that have not passed and those sharing their key (CHANGED_KEYS_TABLE filled
    here)."""
    query, keys = changed_rows_sql(batch)
    if keys:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {CHANGED_KEYS_TABLE} AS {keys}")
    return BatchSpec(batch.name, query, batch.expectations, batch.description, batch.incremental)


def _rows_table(fingerprint: str) -> str:
    return f'{RECORD_DB}."rows_{fingerprint}"'


def _due(con: duckdb.DuckDBPyConnection, fingerprint: str, now: datetime) -> tuple[datetime, bool] | None:
    """(validated_whole_at, known) from the record, or None where there is none that holds: `known`
    when fewer than WHOLE_BATCH_SHARE of the batch's rows (ROW_COUNTS_TABLE) are due (DUE_ROWS_TABLE,
    filled here)."""
    found = con.execute(
        f"SELECT validated_whole_at FROM {RECORD_DB}.batches WHERE fingerprint = ? AND validated_whole_at >= ?",
        [fingerprint, now - REVALIDATE_AFTER],
    ).fetchone()
    if not found or not _has_rows_table(con, fingerprint):
        return None
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {DUE_ROWS_TABLE} AS SELECT c.row_hash, c.n "
        f"FROM {ROW_COUNTS_TABLE} AS c LEFT JOIN {_rows_table(fingerprint)} AS r USING (row_hash) "
        "WHERE r.row_hash IS NULL OR c.n > r.n"
    )
    due, total = con.execute(
        f"SELECT (SELECT coalesce(sum(n), 0) FROM {DUE_ROWS_TABLE}), (SELECT coalesce(sum(n), 0) "
        f"FROM {ROW_COUNTS_TABLE})"
    ).fetchone()
    return found[0], due < WHOLE_BATCH_SHARE * total


def _run_incremental_batch(
    context, suite: SuiteSpec, batch: BatchSpec, con, timezone: str, now: datetime, warnings: list[str]
) -> tuple[ExpectationOutcome, ...]:
    """Outcomes of an incremental batch (see above). When it passes, its record is replaced by its rows
    as they are now; when it fails, hashes no longer in the batch leave the record (rows that went,
    also expired or erased ones: that can only make more rows due)."""
    name = f"{suite.name}.{batch.name}"
    try:
        columns = con.execute(f"DESCRIBE {batch.query}").fetchall()
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {ROW_COUNTS_TABLE} AS SELECT {ROW_HASH_SQL} AS row_hash, "
            f"count(*) AS n FROM ({batch.query}) AS batch GROUP BY ALL"
        )
    except duckdb.Error as exc:  # a failing query fails its expectations below, and says why
        warnings.append(f"{name}: validated whole, its rows could not be hashed ({type(exc).__name__})")
        return _validate_batch(context, suite, batch, con)
    fingerprint = batch_fingerprint(suite, batch, timezone, [c[:2] for c in columns])
    scoped, known, whole_at = batch, False, None
    try:
        recorded = _due(con, fingerprint, now)
        if recorded is not None:
            whole_at, known = recorded
            if known:
                scoped = _scoped(batch, con)
    except duckdb.Error as exc:  # a damaged record: validated whole, and recorded afresh if it passes
        warnings.append(f"{name}: its record of validated rows is unusable, every row is validated: {exc}")
        scoped, known = batch, False
    outcomes = _validate_batch(context, suite, scoped, con, INCREMENTAL_NOTE if known else "")
    passed = all(o.success for o in outcomes)
    try:
        con.execute("BEGIN TRANSACTION")
        if passed:
            # The batch's records under other fingerprints (another query, zone, ...) are of no use now.
            others = con.execute(
                f"SELECT fingerprint FROM {RECORD_DB}.batches WHERE batch = ? AND fingerprint <> ?",
                [name, fingerprint],
            ).fetchall()
            _drop_records(con, [f for (f,) in others])
            con.execute(f"CREATE OR REPLACE TABLE {_rows_table(fingerprint)} AS FROM {ROW_COUNTS_TABLE}")
            con.execute(
                f"INSERT OR REPLACE INTO {RECORD_DB}.batches VALUES (?, ?, ?, ?)",
                [fingerprint, name, whole_at if known else now, now],
            )
        elif _has_rows_table(con, fingerprint):
            table = _rows_table(fingerprint)
            con.execute(f"DELETE FROM {table} WHERE row_hash NOT IN (SELECT row_hash FROM {ROW_COUNTS_TABLE})")
            con.execute(
                f"UPDATE {table} AS r SET n = c.n FROM {ROW_COUNTS_TABLE} AS c "
                "WHERE r.row_hash = c.row_hash AND c.n < r.n"
            )
        con.execute("COMMIT")
    except duckdb.Error as exc:  # the next night validates these rows again
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        warnings.append(f"{name}: could not update its record of validated rows: {type(exc).__name__}: {exc}")
    return outcomes


def _has_rows_table(con: duckdb.DuckDBPyConnection, fingerprint: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?",
            [RECORD_DB, f"rows_{fingerprint}"],
        ).fetchone()[0]
    )


# What DuckDB says when another connection holds the file: left alone. Anything else that keeps the
# record from being opened, or a record of another layout, starts it afresh.
LOCKED_MESSAGES = ("Could not set lock on file", "Conflicting lock", "Unique file handle conflict")
BATCHES_COLUMNS = ["fingerprint", "batch", "validated_whole_at", "written_at"]


def record_paths(record_db: Path) -> list[Path]:
    """The record's file and what DuckDB and a compaction may leave beside it."""
    copy, spill = scratch_paths(record_db)
    return [record_db, record_db.with_name(record_db.name + ".wal"), copy, copy.with_name(copy.name + ".wal"), spill]


def delete_record(record_db: Path) -> None:
    """Delete the record of validated rows and whatever copies of it a crash may have left."""
    import shutil

    for path in record_paths(record_db):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _attach_record(con: duckdb.DuckDBPyConnection, record_db: Path, now: datetime, warnings: list[str]) -> bool:
    """Attach the record read-write and drop what has run out. A record held by another run is left
    alone; one that cannot be used otherwise is deleted and started afresh (every row is validated, as
    on a first night)."""
    record_db.parent.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        try:
            con.execute(f"ATTACH {quote_literal(str(record_db))} AS {RECORD_DB} (READ_WRITE)")
            layout = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = 'batches' "
                    "ORDER BY column_index",
                    [RECORD_DB],
                ).fetchall()
            ]
            if layout and layout != BATCHES_COLUMNS:
                raise duckdb.CatalogException(f"the record's table `batches` has the columns {layout}")
            con.execute(RECORD_BATCHES_DDL)
            _forget_unused_records(con, now)
            return True
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DETACH {RECORD_DB}")
            if attempt == 2 or any(m in str(exc) for m in LOCKED_MESSAGES):
                warnings.append(f"the record of validated rows ({record_db}) is unusable: {type(exc).__name__}: {exc}")
                return False
            warnings.append(f"the record of validated rows ({record_db}) was unusable and is started afresh: {exc}")
            try:
                delete_record(record_db)
            except OSError as err:
                warnings.append(f"the record of validated rows could not be deleted: {err}")
                return False
    return False


def _drop_records(con: duckdb.DuckDBPyConnection, fingerprints: Sequence[str]) -> None:
    for fingerprint in fingerprints:
        con.execute(f"DROP TABLE IF EXISTS {_rows_table(fingerprint)}")
        con.execute(f"DELETE FROM {RECORD_DB}.batches WHERE fingerprint = ?", [fingerprint])


def _forget_unused_records(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """Drop the records not written for REVALIDATE_AFTER (a batch renamed or removed): they would be
    validated whole anyway."""
    old = con.execute(
        f"SELECT fingerprint FROM {RECORD_DB}.batches WHERE written_at < ?", [now - REVALIDATE_AFTER]
    ).fetchall()
    con.execute("BEGIN TRANSACTION")
    _drop_records(con, [f for (f,) in old])
    con.execute("COMMIT")


def run_suites(
    suites: Sequence[SuiteSpec],
    raw_db: Path,
    warehouse_db: Path | None = None,
    docs_dir: Path | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    incremental: bool = False,
    now: datetime | None = None,
    record_db: Path | None = None,
) -> QualityReport:
    """Validate `suites`; warehouse-stage suites need `warehouse_db`. With `docs_dir`, GX Data Docs
    of this validation are written there. `timezone` is the site's (policy): the journal's local times
    are checked against its repeated hours. With `incremental` and `record_db` (the record's file,
    created if missing), incremental batches are validated over the rows whose content has not passed
    yet, and what passes is recorded (see above; `now` for the records' age). Otherwise every row of
    every batch is validated."""
    if any(s.stage == "warehouse" for s in suites) and warehouse_db is None:
        raise ValueError("warehouse suites need a warehouse file")
    now = now or datetime.now()
    context = _gx_context(docs_dir)
    context.data_sources.add_pandas("callsight")
    con = connect(raw_db, warehouse_db, timezone)
    warnings: list[str] = []
    record = False
    try:
        record = (
            incremental
            and record_db is not None
            and any(b.incremental for s in suites for b in s.batches)
            and _attach_record(con, record_db, now, warnings)
        )
        results = []
        for suite in suites:
            outcomes: list[ExpectationOutcome] = []
            for b in suite.batches:
                if record and b.incremental:
                    outcomes += _run_incremental_batch(context, suite, b, con, timezone, now, warnings)
                else:
                    outcomes += _validate_batch(context, suite, b, con)
            results.append(SuiteResult(suite, tuple(outcomes)))
        results = tuple(results)
    finally:
        con.close()
        if record and record_db is not None:
            # Replaced, dropped and pruned tables leave their hashes in free blocks of the file: those
            # of rows since expired or erased must not stay there.
            try:
                compact(record_db)
            except (duckdb.Error, OSError) as exc:
                warnings.append(f"the record of validated rows could not be compacted: {type(exc).__name__}: {exc}")
    index = None
    if docs_dir is not None:
        context.build_data_docs(site_names=[DOCS_SITE])
        index = write_overview(results, docs_dir)
    return QualityReport(results, index, tuple(warnings))


def write_overview(results: Sequence[SuiteResult], docs_dir: Path) -> Path:
    """A plain HTML page over GX's Data Docs: every suite and batch with its result and a link to
    GX's validation page. GX's own index.html fills its table with JavaScript from public CDNs and
    stays empty offline; this page and the validation pages need nothing from the network."""
    from html import escape

    rows = []
    for r in results:
        for b in r.suite.batches:
            outcomes = [o for o in r.outcomes if o.batch == b.name]
            failed = [o for o in outcomes if not o.success]
            pages = sorted((docs_dir / "validations" / r.suite.name / b.name).rglob("*.html"))  # GX splits names on "."
            link = pages[-1].relative_to(docs_dir).as_posix() if pages else None
            name = escape(f"{r.suite.name}.{b.name}")
            cell = f'<a href="{escape(link)}">{name}</a>' if link else name
            css, asset = ("bad" if failed else "ok"), escape("/".join(r.suite.asset))
            status = "passed" if not failed else f"FAILED ({len(failed)})"
            details = "".join(f"<li>{escape(o.expectation)}: {escape(o.detail)}</li>" for o in failed)
            rows.append(
                f"<tr class='{css}'><td>{asset}</td>"
                f"<td>{cell}</td>"
                f"<td>{len(outcomes) - len(failed)} / {len(outcomes)}</td><td>{status}<ul>{details}</ul></td></tr>"
            )
    total = sum(len(r.outcomes) for r in results)
    met = sum(len(r.outcomes) - len(r.failed) for r in results)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>callsight data quality</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
tr.bad td{{background:#fde8e8}} tr.ok td:last-child{{color:#1a7f37}} ul{{margin:0}}</style></head>
<body><h1>callsight data quality</h1>
<p>{met} of {total} expectations met. Suites: <code>data_quality/suites/*.yml</code>.
Each batch links to its Great Expectations validation page
(<a href="index.html">GX's own index</a> needs internet access for its scripts).</p>
<table><tr><th>asset</th><th>suite.batch</th><th>expectations met</th><th>result</th></tr>
{"".join(rows)}
</table></body></html>
"""
    path = docs_dir / "callsight.html"
    path.write_text(page, encoding="utf-8")
    return path


def failure_lines(outcomes: Iterable[ExpectationOutcome]) -> list[str]:
    return [str(o) for o in outcomes]
