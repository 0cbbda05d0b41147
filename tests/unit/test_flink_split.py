"""The Flink SQL statement splitter: comments, quotes and statement sets."""

from __future__ import annotations

import pytest

from upbitpipe.flink.split import classify, split_statements, strip_comments


def _sql(text: str) -> list[str]:
    return [s.sql for s in split_statements(text)]


def test_plain_statements() -> None:
    assert _sql("CREATE TABLE a (x INT);\nSELECT 1;") == ["CREATE TABLE a (x INT)", "SELECT 1"]


def test_last_statement_without_semicolon() -> None:
    assert _sql("SELECT 1; SELECT 2") == ["SELECT 1", "SELECT 2"]


def test_semicolon_in_string_and_escaped_quote() -> None:
    text = "SELECT 'a;b' AS x, 'it''s; here' AS y;\nSELECT 2;"
    assert _sql(text) == ["SELECT 'a;b' AS x, 'it''s; here' AS y", "SELECT 2"]


def test_semicolon_in_quoted_identifiers() -> None:
    assert _sql('SELECT `we;ird` FROM "t;1";SELECT 3') == ['SELECT `we;ird` FROM "t;1"', "SELECT 3"]


def test_line_comments() -> None:
    text = "-- header; with a semicolon\nSELECT 1; -- trailing; comment\n-- only a comment;\n"
    stmts = split_statements(text)
    assert [s.sql for s in stmts] == ["SELECT 1"]
    assert stmts[0].line == 2


def test_block_comments() -> None:
    text = "/* a; b\n ; c */ SELECT /* inline; */ 1;\n/* tail; */"
    assert _sql(text) == ["SELECT /* inline; */ 1"]


def test_comment_markers_inside_strings_are_text() -> None:
    text = "SELECT '-- not a comment;' AS a, '/* nor; this */' AS b; SELECT 2;"
    assert _sql(text) == ["SELECT '-- not a comment;' AS a, '/* nor; this */' AS b", "SELECT 2"]


def test_line_numbers() -> None:
    text = "SET 'a' = '1';\n\n/* x\n y */\nCREATE TABLE t (\n  x INT\n);\n"
    assert [s.line for s in split_statements(text)] == [1, 5]


def test_execute_statement_set() -> None:
    text = """
    EXECUTE STATEMENT SET
    BEGIN
      -- first; sink
      INSERT INTO a SELECT 'x;y' FROM s;
      INSERT INTO b SELECT * FROM s;
    END;
    SELECT 1;
    """
    stmts = split_statements(text)
    assert [s.kind for s in stmts] == ["statement_set", "query"]
    assert stmts[0].inserts == (
        "INSERT INTO a SELECT 'x;y' FROM s",
        "INSERT INTO b SELECT * FROM s",
    )
    assert stmts[0].line == 2


def test_sql_client_statement_set() -> None:
    text = "BEGIN STATEMENT SET;\nINSERT INTO a VALUES (1);\nINSERT INTO b VALUES (2);\nEND;"
    (stmt,) = split_statements(text)
    assert stmt.kind == "statement_set"
    assert len(stmt.inserts) == 2


def test_unclosed_statement_set() -> None:
    with pytest.raises(ValueError, match="no END"):
        split_statements("EXECUTE STATEMENT SET BEGIN INSERT INTO a VALUES (1);")


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SET 'parallelism.default' = '2'", "set"),
        ("create temporary table x (a int)", "ddl"),
        ("USE CATALOG lake", "ddl"),
        ("INSERT INTO t SELECT 1", "insert"),
        ("-- c\nSELECT 1", "query"),
        ("WITH a AS (SELECT 1) SELECT * FROM a", "query"),
        ("SHOW TABLES", "query"),
        ("EXPLAIN SELECT 1", "query"),
    ],
)
def test_classify(sql: str, kind: str) -> None:
    assert classify(sql) == kind


def test_strip_comments_keeps_strings() -> None:
    assert strip_comments("SELECT '--x' -- y\n/* z */ , 1").split() == ["SELECT", "'--x'", ",", "1"]


def test_shipped_templates_split_cleanly() -> None:
    from upbitpipe.flink.render import TEMPLATE_FILES, default_sql_dir

    for name in TEMPLATE_FILES:
        stmts = split_statements((default_sql_dir() / name).read_text(encoding="utf-8"))
        assert stmts, name
        assert all(s.kind != "other" or s.sql.startswith("{{") for s in stmts), name
