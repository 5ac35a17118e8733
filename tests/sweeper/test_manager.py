"""The manager's `delete` on the files the compute side leaves beside the database."""

from __future__ import annotations

import tomllib

from tests.sweeper.conftest import tiny_spec


def test_delete_removes_the_checkpoints_its_workers_name_and_leaves_another_studys(sqlite_url):
    from storage import artifacts, studies
    from sweeper import manager, toml_spec
    from workers.checkpoints import Checkpoints

    handles = [manager.create(toml_spec.parse(tomllib.loads(tiny_spec().replace('"tiny"', f'"{name}"'))),
                              sqlite_url)[0] for name in ("tiny", "other")]
    folder = artifacts.folder(sqlite_url)
    mine, theirs = (Checkpoints(folder, studies.uid(h.storage, h.study_id), every=1) for h in handles)
    for path in (mine.path(0), mine.path(7), theirs.path(0)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"a training state")
    manager.delete(handles[0])
    assert sorted(p.name for p in (folder / artifacts.CHECKPOINTS).iterdir()) == [theirs.path(0).name]
    for handle in handles:
        handle.storage.engine.dispose()
