"""Validating one batch with Great Expectations: the connection its query runs on, a GX context, and a
big batch in parts.

The raw store and the warehouse are opened read-only; GX runs on pandas (an ephemeral context, nothing
written unless Data Docs are asked for).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from callsight.journal.timezones import folds
from callsight.quality.results import ExpectationOutcome, counts_of_single_row, describe
from callsight.quality.suites import BatchSpec, SuiteSpec, partition_key
from callsight.site.policy import Policy
from callsight.site.sql_text import quote_literal

DEFAULT_TIMEZONE = Policy().timezone
DOCS_SITE = "callsight"
# Results keep counts but no example values (they would end up in logs, mails and Data Docs).
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}

# The repeated local hours of the site's time zone (clocks going back), for expectations on local
# times: a TEMP table of every connection, one row per local day such an interval touches.
REPEATED_HOURS_TABLE = "repeated_hours"
REPEATED_HOURS_YEARS = (date(1970, 1, 1), date(2100, 12, 31))
# DuckDB's memory cap for the checks' queries (the referential ones join millions of chains); beyond it
# DuckDB spills into SPILL_DIR beside the raw store, in the site's owner-only warehouse folder, and
# deletes it when the connection closes. Figures: docs/performance.md.
MEMORY_LIMIT = "512MB"
SPILL_DIR = "checks.tmp"


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
    and the TEMP table `repeated_hours` (day, start_local, end_local) of `timezone`. Memory capped at
    MEMORY_LIMIT, spilling into SPILL_DIR beside the raw store."""
    for path in (raw_db, warehouse_db):
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{path}: no such DuckDB file")
    con = duckdb.connect(str(warehouse_db), read_only=True) if warehouse_db else duckdb.connect()
    con.execute(f"SET memory_limit = {quote_literal(MEMORY_LIMIT)}")
    # DuckDB's cache of the week files' blocks counts against the cap and crowded out a grouping's spill
    # (out of memory at 10M legs, docs/performance.md): each check reads a file once anyway
    con.execute("SET enable_external_file_cache = false")
    con.execute(f"SET temp_directory = {quote_literal(str(raw_db.parent / SPILL_DIR))}")
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


# Rows per part of a big batch: GX's pandas engine holds several copies of a batch in memory.
PART_ROWS = 500_000


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


def vectorisable(frame: Any) -> Any:
    """Pure: the frame with integer columns in the types GX's pandas engine compares vectorised (int64,
    float64). DuckDB hands INTEGER/SMALLINT over as int32/int16, or, where a column holds NULLs, as
    pandas' nullable Int32/Int16; for both GX's `column_values.between` calls Python once per value.
    The values are unchanged: nullable ones become float64 with NaN for NULL (GX counts both as
    missing), exact for every integer of 32 bits or fewer. Nullable 64-bit integers stay as they are (a
    double would round them)."""
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


def _error_text(exception_info: object) -> str:
    infos = exception_info.values() if isinstance(exception_info, dict) else [exception_info]
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "error").splitlines()[0][:200]
        if getattr(info, "raised_exception", False):
            return str(getattr(info, "exception_message", "error")).splitlines()[0][:200]
    return ""


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
