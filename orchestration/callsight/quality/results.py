"""What the suites found: each expectation's outcome, per suite and in all, told as counts and column
names, never a data value (results go to logs, mails and Data Docs), and a plain overview page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callsight.quality.suites import SCHEMA_TYPES, ExpectationSpec, SuiteSpec


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
