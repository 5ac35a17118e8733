"""A trial's outcome: its record gives back the attrs it wrote, and no other module spells an attr's name.

The expected attrs here are written out as the databases hold them (the stored format, which
older studies keep), so a renamed constant fails here rather than in an old study's analysis.
"""

from __future__ import annotations

import ast
import math
from dataclasses import replace
from pathlib import Path

import pytest

from storage.contract import outcome
from storage.contract.outcome import COMPLETE, FAIL, PRUNED, Outcome

ROOT = Path(__file__).resolve().parents[3]
ROOMS = ("storage", "sweeper", "workers", "bench")
HOME = Path("storage/contract/outcome.py")
# Words that name nothing but a trial attr: banned everywhere else. The others ("worker" is also a CLI
# command, "test_error" an analysis column, "outcome" a post's reference) only where attrs are read or
# written: attrs[...], attrs.get(...), ... in attrs, *attr*(...) calls, "user_attrs_NAME" columns,
# and literals that list two attrs or more.
ONLY_ATTRS = {outcome.RUN_KEY, outcome.SHARED_FROM, outcome.TEST_CORRECT, outcome.FAIL_REASON,
              outcome.PRUNE_REASON}
ALLOWED: set[tuple[str, str]] = set()  # (file, attr) read by literal on purpose: none

DONE = dict(worker="h:1", run_key="k" * 32, test_error=0.125, report={"accuracy": 0.875},
            test_correct={"n": 3, "bits": "oA=="},
            outcome=dict(epochs_run=4, steps_run=40, steps_per_epoch=10, train_images=1000, valid_images=200,
                         test_images=300, near_zero=0.25, train_error_clean=None, seconds=1.5,
                         stopped_early=True, confident_n=280, confident_precision=0.95))


def _done() -> Outcome:
    """A complete trial's record, as the objective builds it from a result."""
    return Outcome(state=COMPLETE, worker="h:1", run_key="k" * 32, test_error=0.125,
                   report={"accuracy": 0.875}, test_correct={"n": 3, "bits": "oA=="}, epochs_run=4,
                   steps_run=40, steps_per_epoch=10, train_images=1000, valid_images=200, test_images=300,
                   near_zero=0.25, train_error_clean=None, seconds=1.5, stopped_early=True, confident_n=280,
                   confident_precision=0.95)


def test_a_complete_trials_record_writes_its_attrs_and_reads_them_back():
    assert _done().to_attrs() == DONE
    assert Outcome.from_attrs(DONE) == _done()
    assert Outcome.from_attrs(DONE, COMPLETE) == _done()


@pytest.mark.parametrize("state, attrs", [
    (FAIL, dict(worker="h:1", run_key="k", fail_reason="diverged at epoch 2",
                outcome=dict(epochs_run=2, seconds=0.5, valid_error=0.5))),
    (PRUNED, dict(worker="h:2", run_key=None, shared_from={"study": "a", "trial": 3}, prune_reason="pruned",
                  outcome=dict(epochs_run=1, seconds=0.25, valid_error=None))),
    ("RUNNING", dict(worker="h:1", run_key="k")),
])
def test_an_unfinished_trials_record_writes_its_attrs_and_reads_them_back(state, attrs):
    record = Outcome.from_attrs(attrs)
    assert record.state == state and record.to_attrs() == attrs
    assert Outcome.from_attrs(record.to_attrs(), state) == record


def test_a_record_writes_what_it_adds_to_what_was_written_and_no_number_json_lacks():
    started = Outcome(worker="h:1", run_key="k")
    ended = replace(started, state=FAIL, reason="interrupted", epochs_run=0, seconds=0.0,
                    valid_error=math.nan)
    assert started.to_attrs() == {"worker": "h:1", "run_key": "k"}
    unfinished = {"epochs_run": 0, "seconds": 0.0, "valid_error": None}
    assert ended.to_attrs(since=started) == {"fail_reason": "interrupted", "outcome": unfinished}


def test_a_retry_clears_the_reason_and_the_source_it_inherited_unless_it_sets_them():
    inherited = {"worker": "h:0", "fail_reason": "interrupted", "shared_from": {"study": "a", "trial": 1}}
    assert outcome.inherited(inherited, {"worker": "h:1"}) == {"fail_reason": None, "shared_from": None}
    assert outcome.inherited(inherited, {"shared_from": {"study": "b", "trial": 2}}) == {"fail_reason": None}
    assert outcome.inherited({}, {}) == {}


def test_the_analysis_reads_a_trials_reason_by_its_state():
    assert Outcome.from_attrs({"fail_reason": "x", "prune_reason": "y"}, PRUNED).reason == "y"
    assert Outcome.from_attrs({"fail_reason": "x"}, COMPLETE).reason is None


def literals(source: str) -> list[tuple[int, str]]:
    """(line, name) of each trial attr's name that `source` spells out where attrs are meant."""
    names = set(outcome.NAMES)
    found = []
    for node in ast.walk(ast.parse(source)):
        found += [(node.lineno, name) for name in _spelled(node, names)]
    return sorted(set(found))


def _spelled(node, names: set) -> list[str]:
    """The attr names `node` spells out as an attr (see ONLY_ATTRS)."""
    def named(x) -> str | None:
        return x.value if isinstance(x, ast.Constant) and x.value in names else None

    def about_attrs(x) -> bool:
        return "attrs" in ast.unparse(x)

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        bare = node.value.removeprefix("user_attrs_")
        return [bare] if bare in ONLY_ATTRS or (bare in names and bare != node.value) else []
    if isinstance(node, ast.Subscript) and about_attrs(node.value):
        return [n for n in [named(node.slice)] if n]
    if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
        return [n for n in [named(node.left)] if n and about_attrs(node.comparators[0])]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        args = [*node.args, *(k for a in node.args if isinstance(a, ast.Dict) for k in a.keys)]
        if "attr" in node.func.attr or (node.func.attr == "get" and about_attrs(node.func.value)):
            return [n for n in map(named, args) if n]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
        listed = [n for n in map(named, node.keys if isinstance(node, ast.Dict) else node.elts) if n]
        return listed if len(set(listed)) >= 2 else []
    return []


def _sources() -> dict[str, str]:
    """{path from the root: text} of every module of the rooms but the outcome module."""
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for room in ROOMS
            for p in sorted((ROOT / room).rglob("*.py")) if p.relative_to(ROOT) != HOME}


def test_no_module_but_the_outcome_module_spells_a_trial_attrs_name():
    found = {(path, name): line for path, text in _sources().items() for line, name in literals(text)}
    assert [f"{path}:{line}: {name!r}" for (path, name), line in found.items()
            if (path, name) not in ALLOWED] == []
    assert [a for a in ALLOWED if a not in found] == [], "fixed: remove it from ALLOWED"


def test_the_check_sees_each_way_of_spelling_an_attr():
    source = '''
t.user_attrs["report"]
t.user_attrs.get("worker", "-")
"outcome" in trial.user_attrs
storage.set_trial_user_attrs(1, {"test_error": 0.5})
self._set_attrs(trial, {"worker": "h:1"})
raw["user_attrs_report"]
KEEP = ("test_error", "outcome")
x = "fail_reason"
cli("worker"); frame["test_error"]; refs["outcome"]
'''
    assert literals(source) == [(2, "report"), (3, "worker"), (4, "outcome"), (5, "test_error"),
                                (6, "worker"), (7, "report"), (8, "outcome"), (8, "test_error"),
                                (9, "fail_reason")]
