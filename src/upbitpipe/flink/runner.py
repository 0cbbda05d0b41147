"""Run rendered Flink SQL inside the Flink runtime venv (PyFlink), driven over stdin/stdout.

This file is executed as a script by the Flink venv's interpreter, never imported by
upbitpipe: it may use only the standard library and ``pyflink``. The SQL (with secrets)
arrives as one JSON document on stdin - never through a file or the command line - and
progress goes back as JSON lines on stdout:

    in:  {"config": {k: v}, "wait": bool, "max_rows": int,
          "steps": [{"label": "04-streaming-jobs.sql:6", "kind": "statement_set",
                     "sql": "...", "inserts": ["INSERT ...", ...]}, ...]}
    out: {"event": "ok" | "job" | "rows" | "finished" | "error", "label": ..., ...}

The exit code is 0 when every step succeeded, 1 after the first error (later steps do not
run), 2 for a malformed request.
"""

from __future__ import annotations

import importlib
import json
import re
import signal
import sys
from typing import Any

_SET = re.compile(r"^\s*SET\s+'([^']+)'\s*=\s*'((?:[^']|'')*)'\s*;?\s*$", re.IGNORECASE | re.DOTALL)


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


def reduce_error(exc: BaseException) -> tuple[str, str]:
    """(one readable line, full text). The line is the innermost Java cause's message."""
    full = str(exc)
    causes = [
        line.strip()[len("Caused by: ") :]
        for line in full.splitlines()
        if line.strip().startswith("Caused by: ")
    ]
    head = ""
    java = ""
    for line in full.splitlines():
        text = line.strip()
        if not java and text.startswith(": "):  # py4j: ": java.lang.Xyz: message"
            java = text[2:]
        if not head and text and not text.startswith("at ") and "Traceback" not in text:
            head = text
    if head.startswith("An error occurred while calling") and java:
        head = java
    pick = causes[-1] if causes else head
    # "org.apache.flink.table.api.ValidationException: msg" -> "ValidationException: msg"
    pick = re.sub(r"^(?:[a-z_$][\w$]*\.)+([A-Z][\w$]*(?:Exception|Error)):", r"\1:", pick)
    if head and causes and head not in pick and "Exception" not in head[:80]:
        pick = f"{head} - {pick}"
    return pick[:2000], full


def main() -> int:
    try:
        request = json.loads(sys.stdin.read())
        steps = request["steps"]
        config = request.get("config", {})
    except (ValueError, KeyError, TypeError) as exc:
        emit("error", label="request", message=f"malformed request: {exc}", detail="")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    modes = {
        match.group(2).strip().lower()
        for step in steps
        if step.get("kind") == "set"
        and (match := _SET.match(step["sql"])) is not None
        and match.group(1) == "execution.runtime-mode"
    }
    if len(modes) > 1:
        emit(
            "error",
            label="request",
            message="these files mix streaming and batch mode; submit them separately",
            detail="",
        )
        return 1
    table = importlib.import_module("pyflink.table")
    if modes == {"batch"}:
        settings = table.EnvironmentSettings.in_batch_mode()
    else:
        settings = table.EnvironmentSettings.in_streaming_mode()
    t_env = table.TableEnvironment.create(settings)
    conf = t_env.get_config()
    for key, value in config.items():
        conf.set(key, str(value))
    wait = bool(request.get("wait", False))
    max_rows = int(request.get("max_rows", 100))

    for step in steps:
        label = step["label"]
        kind = step["kind"]
        try:
            if kind == "set":
                match = _SET.match(step["sql"])
                if match is None:
                    emit("error", label=label, message="only SET 'key' = 'value' is supported")
                    return 1
                if match.group(1) != "execution.runtime-mode":  # fixed at creation
                    conf.set(match.group(1), match.group(2).replace("''", "'"))
                emit("ok", label=label, kind=kind)
                continue
            if kind == "statement_set":
                stmt_set = t_env.create_statement_set()
                for insert in step["inserts"]:
                    stmt_set.add_insert_sql(insert)
                result = stmt_set.execute()
            else:
                result = t_env.execute_sql(step["sql"])
            client = result.get_job_client()
            if client is None:
                if kind == "query" or _returns_rows(result):
                    _emit_rows(label, result, max_rows)
                else:
                    emit("ok", label=label, kind=kind)
                continue
            job_id = str(client.get_job_id())
            if kind == "query":
                _emit_rows(label, result, max_rows, job_id=job_id)
                continue
            emit("job", label=label, kind=kind, job_id=job_id)
            if wait:
                result.wait()
                emit("finished", label=label, job_id=job_id)
        except Exception as exc:  # py4j / pyflink wrap every Java error
            message, detail = reduce_error(exc)
            emit("error", label=label, kind=kind, message=message, detail=detail)
            return 1
    return 0


def _returns_rows(result: Any) -> bool:
    kind = str(result.get_result_kind())
    return "SUCCESS_WITH_CONTENT" in kind


def _emit_rows(label: str, result: Any, max_rows: int, job_id: str | None = None) -> None:
    """Rows through the Java iterator: every value as py4j gives it or its ``toString()``,
    so no Flink type (TIMESTAMP_LTZ, ROW, ARRAY, ...) trips Python-side conversion."""
    columns = list(result.get_table_schema().get_field_names())
    rows: list[list[Any]] = []
    iterator = result._j_table_result.collect()
    try:
        while len(rows) < max_rows and iterator.hasNext():
            row = iterator.next()
            rows.append([java_value(row.getField(i)) for i in range(row.getArity())])
        truncated = len(rows) >= max_rows and bool(iterator.hasNext())
    finally:
        iterator.close()
    emit("rows", label=label, columns=columns, rows=rows, truncated=truncated, job_id=job_id)


def java_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if type(value).__name__ == "JavaArray":
        return [java_value(v) for v in value]
    return str(value)


if __name__ == "__main__":
    # Run as a script: drop this file's directory from sys.path so sibling modules of the
    # upbitpipe package can never shadow anything.
    sys.path.pop(0)
    sys.exit(main())
