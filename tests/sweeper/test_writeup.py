"""The report's measures of time (sweeper.writeup): a study's wall time leaves out the pauses between the
invocations of a study run in parts, checked against a count second by second."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sweeper import writeup


def test_a_studys_wall_time_is_the_time_any_of_its_trials_ran_pauses_left_out():
    t0 = pd.Timestamp("2026-12-06 04:00:00")
    intervals = [(0, 10), (5, 12), (3, 4), (100, 110), (105, 106), (300, 301)]  # overlaps, a pause, a late part
    trials = pd.DataFrame({"started": [t0 + pd.Timedelta(seconds=a) for a, _ in intervals] + [pd.NaT],
                           "finished": [t0 + pd.Timedelta(seconds=b) for _, b in intervals] + [pd.NaT]})
    busy = np.zeros(400, dtype=bool)  # by hand: every second some trial was running
    for a, b in intervals:
        busy[a:b] = True
    assert writeup._span(trials.sample(frac=1, random_state=0)) == busy.sum() == 23
    assert writeup._span(trials.iloc[:0]) == 0.0
    assert writeup._hours(3 * 3600 + 59 * 60 + 40) == "4 h 0 min" and writeup._hours(59.5) == "59.5 s"
