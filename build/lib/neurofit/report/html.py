"""Small self-contained HTML pages (inline CSS, no scripts) that the Snakemake report embeds as they are."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

STYLE = """<style>
body{font-family:system-ui,sans-serif;font-size:14px;margin:1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:3px 8px;text-align:left;font-variant-numeric:tabular-nums}
th{background:#eee} code,pre{font-size:12px} pre{background:#f6f6f6;padding:.5em;overflow-x:auto}
</style>"""


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}"
            f"</head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_table_page(csv_path: str | Path, html_out: str | Path, title: str, digits: int = 3) -> None:
    """A CSV table as an HTML page, numbers rounded for reading (the CSV keeps full precision)."""
    frame = pd.read_csv(csv_path)
    rows = [[f"{v:.{digits}f}" if isinstance(v, float) else v for v in row] for row in frame.itertuples(index=False)]
    note = f"<p>{len(frame)} rows; full precision in <code>{html.escape(Path(csv_path).name)}</code>.</p>"
    Path(html_out).parent.mkdir(parents=True, exist_ok=True)
    Path(html_out).write_text(page(title, note + table(list(frame.columns), rows)))
