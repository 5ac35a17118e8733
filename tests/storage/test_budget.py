"""The budget over all workers: which trials count as done, and the lock that keeps workers from overshooting."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import optuna
import pytest
from optuna.trial import TrialState

from storage import budget, rdb, stopflag
from storage.budget import Counts


def test_next_step():
    assert Counts(n_trials=3).next_step() == "run"
    assert Counts(complete=2, running=1, n_trials=3).next_step() == "wait"
    assert Counts(complete=2, pruned=1, n_trials=3).next_step() == "done"
    assert Counts(complete=3, waiting=1, n_trials=3).next_step() == "run"  # a retry always runs
    assert Counts(complete=1, fail=2, retried=1, running=0, n_trials=3).next_step() == "run"
    assert Counts(complete=1, fail=2, retried=0, n_trials=3).next_step() == "done"  # failures count as done


def test_the_budget_is_the_extended_one_else_the_specs():
    assert Counts(n_trials=3).budget == 3 and Counts(extended=5, n_trials=3).budget == 5
    assert Counts(complete=3, extended=5, n_trials=3).next_step() == "run"
    assert Counts().budget is None
    with pytest.raises(TypeError, match=r"n_trials=spec.n_trials"):  # read without it: says how
        Counts().next_step()


@pytest.mark.slow  # waits on the clock (a grace period) or another process
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_counts_by_state_with_a_retried_stale_trial(db_url):
    storage = rdb.open_storage(db_url, create=True, heartbeat=1, grace=2, max_retry=1)
    study = optuna.create_study(storage=storage, study_name="b")
    study_id = storage.get_study_id_from_name("b")
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
    stale = study.ask()  # RUNNING, its heartbeat recorded once and never again: its worker 'died'
    storage.record_heartbeat(stale._trial_id)
    assert budget.counts(storage.engine, study_id) == Counts(complete=1, pruned=1, fail=1, running=1)
    time.sleep(3.2)  # SQLite keeps whole seconds: 3 > grace 2 for sure
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        optuna.storages.fail_stale_trials(study)  # FAIL, and a WAITING retry with the same parameters
    counts = budget.counts(storage.engine, study_id, n_trials=4)
    assert counts == Counts(complete=1, pruned=1, fail=2, retried=1, waiting=1, n_trials=4)
    assert counts.done == 3 and counts.next_step() == "run"


def test_counts_carry_the_stop_flag(db_url):
    storage = rdb.open_storage(db_url, create=True)
    optuna.create_study(storage=storage, study_name="s")
    other = optuna.create_study(storage=storage, study_name="other")
    study_id = storage.get_study_id_from_name("s")
    assert budget.counts(storage.engine, study_id).stopped is False
    stopflag.set_stopped(storage, study_id, True)
    assert budget.counts(storage.engine, study_id).stopped is True
    assert budget.counts(storage.engine, other._study_id).stopped is False  # per study
    stopflag.set_stopped(storage, study_id, False)
    assert budget.counts(storage.engine, study_id) == Counts()


_HOLDER = textwrap.dedent("""
    import sys, time
    from storage import budget, rdb
    lock = budget.lock(rdb.open_storage(sys.argv[1]).engine, 1)
    print("trying", flush=True)
    t0 = time.monotonic()
    with lock:
        print(f"{time.monotonic() - t0:.2f}", flush=True)
""")


@pytest.mark.slow  # waits on the clock (a grace period) or another process
def test_the_lock_excludes_another_process_until_released(db_url):
    storage = rdb.open_storage(db_url, create=True)
    lock = budget.lock(storage.engine, 1).acquire()
    other = subprocess.Popen([sys.executable, "-c", _HOLDER, db_url], stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "trying"
    time.sleep(1.0)
    assert other.poll() is None  # still waiting for the lock
    lock.release()
    lock.release()  # twice is harmless
    out, _ = other.communicate(timeout=30)
    assert other.returncode == 0 and float(out) >= 0.9


def test_locks_of_different_studies_are_independent(db_url):
    import threading

    engine = rdb.open_storage(db_url, create=True).engine
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from storage import budget, rdb
        lock = budget.lock(rdb.open_storage(sys.argv[1]).engine, 1).acquire()  # kept: freed, it would unlock
        print("held", flush=True)
        time.sleep(60)
    """), db_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process holds study 1's lock
        threading.Timer(10, holder.kill).start()  # were the locks one, study 2's would wait for this
        started = time.monotonic()
        with budget.lock(engine, 2):
            waited = time.monotonic() - started
        assert waited < 5
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holder_frees_the_lock(db_url):
    storage = rdb.open_storage(db_url, create=True)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from storage import budget, rdb
        lock = budget.lock(rdb.open_storage(sys.argv[1]).engine, 1).acquire()  # kept: freed, it would unlock
        print("held", flush=True)
        time.sleep(60)
    """), db_url], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    started = time.monotonic()
    with budget.lock(storage.engine, 1):
        pass
    assert time.monotonic() - started < 10


def test_release_tells_when_the_lock_died_with_its_connection(pg_url):
    import sqlalchemy as sa

    engine = rdb.open_storage(pg_url, create=True).engine
    assert budget.lock(engine, 1).acquire().release() is True
    lock = budget.lock(engine, 1).acquire()
    pid = lock.bind.execute(sa.text("select pg_backend_pid()")).scalar()
    with engine.connect() as admin:  # what a server restart does to the holder's connection
        admin.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
    assert lock.release() is False
    with budget.lock(engine, 1):  # and the lock is free for others
        pass


@pytest.mark.parametrize("n", [0, 2])
def test_counts_of_an_empty_study(db_url, n):
    storage = rdb.open_storage(db_url, create=True)
    optuna.create_study(storage=storage, study_name="e")
    assert budget.counts(storage.engine, storage.get_study_id_from_name("e"), n_trials=n).next_step() == \
        ("done" if n == 0 else "run")


def _kill_advisory_lock_holders(engine) -> None:
    """What a server restart does to the connections that hold advisory locks."""
    import sqlalchemy as sa

    with engine.connect() as admin:
        admin.execute(sa.text("select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' "
                              "and pid <> pg_backend_pid()"))


def test_a_trial_gives_way_when_its_budget_lock_died_and_the_budget_is_taken(pg_url):
    storage = rdb.open_storage(pg_url, create=True)
    study = optuna.create_study(storage=storage, study_name="b")
    study.ask(), study.ask()  # two running trials: this worker's, and one another worker started meanwhile

    def confirm(n_trials: int, *, lock_dies: bool) -> budget.Step:
        gate = budget.Gate(study, storage, study._study_id, n_trials)
        with gate.reserve() as step:
            if lock_dies:
                _kill_advisory_lock_holders(storage.engine)
            gate.confirm()
        return step

    assert confirm(2, lock_dies=True) is budget.Step.WAIT  # room for both: go on
    with pytest.raises(budget.Overshoot, match="budget lock was lost"):
        confirm(1, lock_dies=True)
    assert confirm(1, lock_dies=False) is budget.Step.WAIT  # a lock held to the end: no recount, no Overshoot


def test_the_gate_says_stopped_and_fails_stale_trials_before_waiting(sqlite_url):
    storage = rdb.open_storage(sqlite_url, create=True, heartbeat=1, grace=1, max_retry=3)
    study = optuna.create_study(storage=storage, study_name="g")
    study_id = study._study_id
    gate = budget.Gate(study, storage, study_id, 1)
    with gate.reserve() as step:
        assert step is budget.Step.RUN
    storage.record_heartbeat(study.ask()._trial_id)  # a running trial whose worker then dies
    time.sleep(2.5)  # stale after the grace period (SQLite's now() is whole seconds: 1 s more)
    with gate.reserve() as step:  # it is failed and retried as a WAITING trial, which this worker runs
        assert step is budget.Step.RUN
    assert budget.counts(storage.engine, study_id).waiting == 1
    stopflag.set_stopped(storage, study_id, True)
    with gate.reserve() as step:
        assert step is budget.Step.STOPPED


def test_an_extended_budget_is_read_with_the_counts_and_decides_the_next_step(db_url):
    storage = rdb.open_storage(db_url, create=True)
    study = optuna.create_study(storage=storage, study_name="e")
    sid = storage.get_study_id_from_name("e")
    for _ in range(2):
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    assert budget.counts(storage.engine, sid).extended is None
    assert budget.counts(storage.engine, sid, n_trials=2).next_step() is budget.Step.DONE
    budget.extend(storage, sid, 3)
    now = budget.counts(storage.engine, sid, n_trials=2)
    assert now.extended == 3 and now.budget == 3 and now.next_step() is budget.Step.RUN
    budget.extend(storage, sid, 2)
    assert budget.counts(storage.engine, sid, n_trials=5).next_step() is budget.Step.DONE
