"""Analyst documentation stays true: every mart column described, the committed schema doc current,
and the dbt docs site builds against a published warehouse."""

import re

import duckdb
import yaml

from callsight.warehouse.dbt_project import DBT_PROJECT_DIR
from callsight.warehouse.schema_docs import SCHEMA_DOC, generate_dbt_docs, schema_markdown

from .conftest import Site


def test_every_mart_column_is_described_and_typed() -> None:
    marts = sorted((DBT_PROJECT_DIR / "models" / "marts").glob("*.yml"))
    doc = {"models": [m for yml in marts for m in yaml.safe_load(yml.read_text())["models"]]}
    assert len(doc["models"]) >= 9
    for model in doc["models"]:
        assert model.get("description"), model["name"]
        assert model["config"]["contract"]["enforced"] is True, model["name"]
        for col in model["columns"]:
            assert col.get("description") and col.get("data_type"), (model["name"], col["name"])


def test_committed_schema_doc_is_current() -> None:
    assert SCHEMA_DOC.read_text(encoding="utf-8") == schema_markdown(), "run `callsight schema-doc`"


def test_dbt_docs_build_against_the_published_warehouse(published_site: Site) -> None:
    page = generate_dbt_docs(published_site.settings)
    html = page.read_text(encoding="utf-8")
    assert "fct_inbound_calls" in html and "Reaktionszeit" in html
    assert not published_site.settings.build_db.exists()


def test_every_analyst_column_is_described_and_typed() -> None:
    for yml in sorted((DBT_PROJECT_DIR / "models" / "analyst").glob("*.yml")):
        for model in yaml.safe_load(yml.read_text())["models"]:
            assert model.get("description") and model.get("columns"), model["name"]
            for col in model["columns"]:
                assert col.get("description") and col.get("data_type"), (model["name"], col["name"])


def documented_columns(markdown: str, schema: str) -> dict[str, list[tuple[str, str]]]:
    """The (column, type) rows of each `schema.table` section of the schema doc."""
    out: dict[str, list[tuple[str, str]]] = {}
    for section in re.split(r"^## ", markdown, flags=re.M)[1:]:
        title = re.match(rf"`{schema}\.(\w+)`", section)
        if title:
            rows = re.findall(r"^\| `(\w+)` \| (\w*) \|", section, flags=re.M)
            out[title.group(1)] = rows
    return out


def test_schema_doc_lists_every_analyst_column_as_built(published_site: Site) -> None:
    con = duckdb.connect(str(published_site.settings.served_db), read_only=True)
    try:
        listed = con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'analyst'").fetchall()
        views = [r[0] for r in listed]
        built = {v: [(c, t.lower()) for c, t, *_ in con.execute(f"DESCRIBE analyst.{v}").fetchall()] for v in views}
    finally:
        con.close()
    assert len(built) >= 7
    assert documented_columns(SCHEMA_DOC.read_text(encoding="utf-8"), "analyst") == built
