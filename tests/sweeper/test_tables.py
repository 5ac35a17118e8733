"""Terminal tables (sweeper.tables): they fit 120 columns unless --wide, empty cells are '-', JSON keeps
full precision, a written file says so."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sweeper import tables


def _wide_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"a_rather_long_column_{i}": rng.random(4) for i in range(14)})
    frame["claim"] = ["With RMSprop the network overfits in the second half of the run " * 2, pd.NA, None, "short"]
    frame["retry_of"] = pd.array([1, pd.NA, 3, pd.NA], dtype="Int64")
    frame["shared_from"] = pd.Series(["a#1", pd.NA, None, float("nan")], dtype=object)
    return frame


def test_a_terminal_table_fits_120_columns_and_shows_no_NA():
    text = tables.table(_wide_frame())
    assert max(map(len, text.splitlines())) <= tables.WIDTH
    assert "<NA>" not in text and "NaN" not in text and "None" not in text
    assert "With RMSprop the network overfits in ..." in text  # cut to 40 characters


def test_wide_keeps_one_line_per_row_and_every_cell_whole():
    frame = _wide_frame()
    lines = tables.table(frame, wide=True).splitlines()
    assert len(lines) == len(frame) + 1 and max(map(len, lines)) > tables.WIDTH
    assert frame.loc[0, "claim"].strip() in lines[1]


def test_json_keeps_15_digits_and_a_written_file_says_so(tmp_path, capsys):
    frame = pd.DataFrame({"x": [0.123456789012345]})
    tables.write(frame, "json", str(tmp_path / "t.json"))
    assert json.loads((tmp_path / "t.json").read_text())[0]["x"] == pytest.approx(0.123456789012345, abs=1e-15)
    assert f"wrote 1 rows to {tmp_path / 't.json'}" in capsys.readouterr().err
    tables.write(frame, "parquet", str(tmp_path / "t.parquet"))
    assert "t.parquet" in capsys.readouterr().err
