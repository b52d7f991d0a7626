"""Running the suites: every batch validated (incremental ones over the rows not yet passed, with a
record), GX Data Docs and an overview page on request; one report naming every expectation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import duckdb

from callsight.quality.results import ExpectationOutcome, QualityReport, SuiteResult, write_overview
from callsight.quality.suites import SuiteSpec
from callsight.quality.validated_rows import _attach_record, _run_incremental_batch, _run_weekly_batch
from callsight.quality.validation import DEFAULT_TIMEZONE, DOCS_SITE, _gx_context, _validate_batch, connect
from callsight.site.compaction import compact


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
    yet, and what passes is recorded (see quality.validated_rows; `now` for the records' age). Otherwise
    every row of every batch is validated."""
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
                if record and b.weeks:
                    outcomes += _run_weekly_batch(context, suite, b, con, timezone, now, warnings)
                elif record and b.incremental:
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
