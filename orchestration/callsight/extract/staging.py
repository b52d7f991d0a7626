"""The staging SELECT: source rows in, masked, typed and checked rows out, in one DuckDB statement.

Private calls are masked and erased identifiers suppressed before anything else reads the row; every
row that breaks the journal contract gets its reason (the first that holds) and goes to quarantine."""

from __future__ import annotations

from collections.abc import Sequence

from callsight.journal.contract import FLAG_COLUMNS, INT_COLUMNS, JOURNAL_COLUMNS, TEXT_COLUMNS, TIME_COLUMNS
from callsight.journal.timezones import Fold, in_same_fold_sql
from callsight.privacy.erasure import erased_sql, suppressed_columns_sql
from callsight.privacy.masking import masked_columns_sql, private_sql
from callsight.site.policy import Policy

MAX_TEXT = {"Subject": 4000}


DEFAULT_MAX_TEXT = 1000


MAX_DURATION_SECONDS = 24 * 3600


CONTROL_CHARS = r"[\x00-\x08\x0a-\x1f\x7f]"


TARGET = {
    "ID": "BIGINT",
    **dict.fromkeys(TIME_COLUMNS, "TIMESTAMP"),
    **dict.fromkeys((*INT_COLUMNS, *FLAG_COLUMNS), "DOUBLE"),
}


def _parse(col: str) -> str:
    """Parse a source column once (DuckDB's cast ignores surrounding blanks; '' parses to NULL)."""
    return f'TRY_CAST("{col}" AS {TARGET[col]})'


def _unparseable(col: str, source_type: str) -> str:
    """The value is there but did not parse (checked only where parsing gave NULL)."""
    present = f"trim(\"{col}\") <> ''" if source_type == "VARCHAR" else "true"
    return f'_v_{col} IS NULL AND "{col}" IS NOT NULL AND {present}'


def _reasons(types: dict[str, str], repeated: Sequence[Fold] = ()) -> list[tuple[str, str]]:
    """(condition, reason) in order, over the parsed columns _v_<col>; the first that holds wins.
    Times out of order on the wall clock are accepted where both lie in one of the `repeated` local
    intervals (clocks going back): the earlier in the first pass, the later in the second."""
    out = [("_v_ID IS NULL", "ID missing or not an integer")]
    out += [(_unparseable(c, types[c]), f"{c} unparseable") for c in TIME_COLUMNS]
    out.append(("_v_StartTime IS NULL", "StartTime missing or unparseable"))
    for c in INT_COLUMNS:
        out += [
            (_unparseable(c, types[c]), f"{c} not a number"),
            (f"_v_{c} < 0", f"{c} negative"),
            (f"_v_{c} > {MAX_DURATION_SECONDS}", f"{c} longer than 24 hours"),
        ]
    out += [(f"({_unparseable(c, types[c])}) OR _v_{c} NOT IN (0, 1)", f"{c} not 0/1") for c in FLAG_COLUMNS]
    for begins, ends in (("StartTime", "StopTime"), ("ConnectTime", "DisconnectTime"), ("StartTime", "ConnectTime")):
        folded = in_same_fold_sql(f"_v_{begins}", f"_v_{ends}", list(repeated))
        out.append((f"_v_{ends} < _v_{begins} AND NOT {folded}", f"{ends} before {begins}"))
    for c in TEXT_COLUMNS:
        limit = MAX_TEXT.get(c, DEFAULT_MAX_TEXT)
        out.append((f'length("{c}") > {limit}', f"{c} longer than {limit} characters"))
    return out


def _reason_sql(types: dict[str, str], duplicates: str | None = None, repeated: Sequence[Fold] = ()) -> str:
    whens = " ".join(f"WHEN {cond} THEN '{why}'" for cond, why in _reasons(types, repeated))
    # One regular expression over all text columns per row; only rows that match look column by column.
    all_text = "concat(" + ", ".join(f'"{c}"' for c in TEXT_COLUMNS) + ")"
    per_column = " ".join(
        f"WHEN regexp_matches(\"{c}\", '{CONTROL_CHARS}') THEN '{c} contains control characters'" for c in TEXT_COLUMNS
    )
    # A well-formed row whose ID occurs more than once in the window (IDs in the table `duplicates`).
    dup = f"WHEN _v_ID IN (SELECT \"ID\" FROM {duplicates}) THEN 'ID duplicated in source' " if duplicates else ""
    return f"CASE {whens} WHEN regexp_matches({all_text}, '{CONTROL_CHARS}') THEN CASE {per_column} END {dup}END"


def staged_select(
    relation: str,
    policy: Policy,
    private_lines: list[str],
    types: dict[str, str],
    erasure: bool = False,
    duplicates: str | None = None,
    stored: str | None = None,
    repeated: Sequence[Fold] = (),
    always_json: bool = False,
) -> str:
    """SQL turning source rows into masked, typed rows with a reason for malformed ones.

    `types` are the DuckDB types of the relation's columns (VARCHAR for text sources). With `erasure`,
    rows whose source numbers or contact name match the erasure register (see erasure.prepare_matching)
    lose their personal fields (_is_erased); the match is made on the source values, before masking.
    `duplicates` names a table of IDs that occur more than once in the window: such rows, when nothing
    else is wrong with them, are quarantined as duplicated. `stored` names a table of ("ID", _row_hash)
    of stored rows: a well-formed row equal to one of them is left out (it is unchanged). `repeated`
    are the site's repeated local intervals (timezones.folds) around the window: times out of order on
    the wall clock within one of them are not malformed. `always_json`: every row's masked JSON, also
    of rows without a reason (the unplaced pass quarantines them all)."""
    types = {
        c: ("VARCHAR" if types.get(c, "VARCHAR").upper().startswith("VARCHAR") else types[c]) for c in JOURNAL_COLUMNS
    }
    masked = masked_columns_sql(policy.private_calls, "_p")
    replace = ", ".join(f'{expr} AS "{col}"' for col, expr in masked.items())
    suppressed = ", ".join(f'{expr} AS "{col}"' for col, expr in suppressed_columns_sql("_e").items())
    text_cols = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in TEXT_COLUMNS)
    other_cols = ", ".join(f'"{c}"' for c in JOURNAL_COLUMNS if c not in TEXT_COLUMNS)
    parsed = ", ".join(f"{_parse(c)} AS _v_{c}" for c in TARGET)
    private_flag = private_sql(private_lines, types["PrivateCall"] == "VARCHAR")
    typed = []
    for c in JOURNAL_COLUMNS:
        if c in TEXT_COLUMNS:
            typed.append(f'"{c}"')
        elif c in INT_COLUMNS:
            typed.append(f'TRY_CAST(round(_v_{c}) AS INTEGER) AS "{c}"')
        elif c in FLAG_COLUMNS:
            typed.append(f'CASE WHEN _v_{c} IN (0, 1) THEN CAST(_v_{c} AS SMALLINT) END AS "{c}"')
        else:
            typed.append(f'_v_{c} AS "{c}"')
    typed_values = [t.rsplit(" AS ", 1)[0] for t in typed]
    as_json = "json_object(" + ", ".join(f"'{c}', CAST(\"{c}\" AS VARCHAR)" for c in JOURNAL_COLUMNS) + ")"
    # An anti join, not `WHERE NOT EXISTS (...)`: DuckDB turns that correlated subquery into a delim
    # join, which holds every staged row of the window in memory before the first batch comes out
    # (out of memory under MEMORY_LIMIT for a large window). The hash table is built on the stored (ID, hash).
    unchanged = f'ANTI JOIN {stored} AS s ON s."ID" = staged."ID" AND s._row_hash = staged._row_hash' if stored else ""
    return f"""
        WITH src AS (SELECT {other_cols}, {text_cols} FROM ({relation})),
        flagged AS (SELECT *, {private_flag} AS _p, {erased_sql() if erasure else "false"} AS _e FROM src),
        masked AS (SELECT * {f"REPLACE ({replace})" if replace else ""} FROM flagged),
        erased AS (SELECT * {f"REPLACE ({suppressed})" if erasure else ""} FROM masked),
        parsed AS (SELECT *, {parsed} FROM erased),
        checked AS (SELECT *, {_reason_sql(types, duplicates, repeated)} AS _reason FROM parsed),
        staged AS (
            SELECT {", ".join(typed)}, _p AS _is_private, _e AS _is_erased, _reason,
                   CASE WHEN _reason IS NULL THEN hash({", ".join(typed_values)}, _p) END AS _row_hash,
                   CASE WHEN {"true" if always_json else "_reason IS NOT NULL"} THEN {as_json} END AS _row_json,
                   CAST("ID" AS VARCHAR) AS _source_id, CAST("StartTime" AS VARCHAR) AS _start_text
            FROM checked
        )
        SELECT staged.* FROM staged {unchanged}
    """
