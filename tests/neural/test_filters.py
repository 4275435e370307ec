"""The safe row filter: only column-versus-literal comparisons, never code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurofit.neural.filters import RowFilterError, parse_row_filter


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame({"is_good": [1, 0, 1, 1], "start_time": [0.0, 1.5, 3.0, -1.0],
                         "frameName": np.array([b"a.png", b"b.png", b"c.png", b"a.png"], dtype=object),
                         "flag": [True, False, False, True], "frame name": ["x", "y", "x", "y"]})


@pytest.mark.parametrize(("expression", "rows"), [
    ("is_good == 1", [0, 2, 3]),
    ("is_good != 1", [1]),
    ("start_time >= 0 and is_good == 1", [0, 2]),
    ("start_time < 0 or is_good == 0", [1, 3]),
    ("not (start_time < 0 or is_good == 0)", [0, 2]),
    ("frameName == 'a.png'", [0, 3]),  # bytes column decoded
    ('frameName in ["b.png", "c.png",]', [1, 2]),
    ("frameName not in ['b.png']", [0, 2, 3]),
    ("flag == true", [0, 3]),
    ("flag == False", [1, 2]),
    ("start_time > -0.5e0 and start_time <= 1.5", [0, 1]),
    ("`frame name` == 'x'", [0, 2]),
    ("is_good in [0]", [1]),
    ("is_good == 1 and (frameName == 'a.png' or not flag == true)", [0, 2, 3]),
])
def test_filter_keeps_the_right_rows(table: pd.DataFrame, expression: str, rows: list[int]) -> None:
    mask = parse_row_filter(expression).apply(table)
    assert mask.dtype == bool
    assert list(np.flatnonzero(mask)) == rows


@pytest.mark.parametrize("expression", [
    "@pd.io.common.os.system('touch /tmp/x') == 0 or start_time >= 0",  # the exploit
    "__import__('os').system('true') == 0",
    "start_time.__class__ == 1",
    "is_good == other_column",
    "is_good + 1 == 2",
    "is_good == 1 &",
    "is_good",
    "(is_good == 1",
    "is_good in 1",
    "",
    "is_good == 1 is_good == 0",
])
def test_anything_but_comparisons_is_refused_with_the_key(expression: str) -> None:
    with pytest.raises(RowFilterError, match=r"responses\.query.*compares columns to literals"):
        parse_row_filter(expression)


def test_the_exploit_runs_nothing(tmp_path, table: pd.DataFrame) -> None:
    marker = tmp_path / "x"
    with pytest.raises(RowFilterError):
        parse_row_filter(f"@pd.io.common.os.system('touch {marker}') == 0 or start_time >= 0").apply(table)
    assert not marker.exists()


def test_unknown_column_and_type_mismatch_are_clear(table: pd.DataFrame) -> None:
    with pytest.raises(RowFilterError, match=r"trials\.filter 'is_gud == 1' names column\(s\) \['is_gud'\].*is_good"):
        parse_row_filter("is_gud == 1", key="trials.filter").apply(table)
    with pytest.raises(RowFilterError, match="column 'is_good' is numeric.*compared with '1'"):
        parse_row_filter("is_good == '1'").apply(table)
    with pytest.raises(RowFilterError, match="column 'frameName' is text.*compared with 3"):
        parse_row_filter("frameName == 3").apply(table)


def test_columns_and_missing_text_values() -> None:
    row_filter = parse_row_filter("a == 1 or (b != 'x' and a > 0)")
    assert row_filter.columns == ["a", "b"]
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "y"]})
    assert list(row_filter.apply(df)) == [True, True, True]
    assert list(parse_row_filter("b == 'y'").apply(df)) == [False, False, True]
    assert list(parse_row_filter("b < 'y'").apply(df)) == [True, False, False]
