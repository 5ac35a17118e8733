"""The artifact folder's checkpoint naming rule: the worker writes by it, `sweeper delete` removes by it."""

from __future__ import annotations

from storage import artifacts


def test_a_studys_checkpoints_are_the_files_its_rule_names_and_no_other_studys(tmp_path):
    names = [artifacts.checkpoint(tmp_path, study, n) for study, n in (("id1", 0), ("id1", 12), ("id10", 3))]
    for path in names:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    (tmp_path / artifacts.CHECKPOINTS / "id1-notes.txt").touch()
    assert names[0] == tmp_path / "checkpoints" / "id1-0.npz"
    assert artifacts.checkpoints(tmp_path, "id1") == names[:2]
    assert artifacts.checkpoints(tmp_path, "id10") == names[2:]
    assert artifacts.checkpoints(tmp_path / "none", "id1") == []
