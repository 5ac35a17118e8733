"""Many workers, one PostgreSQL: PgBouncer in transaction mode in front of a private 20-connection server."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import optuna
import psycopg
import pytest
import sqlalchemy as sa

from storage import locks, rdb
from storage.contract.errors import BadInput
from storage.lean import LeanRDBStorage
from sweeper import connections
from tests.conftest import need
from tests.sweeper.test_scale import check_complete, create, finish, start_worker

pytestmark = pytest.mark.slow  # a private server, PgBouncer and 24 worker processes

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PGBOUNCER = Path("/usr/sbin/pgbouncer")
MAX_CONNECTIONS = 20
POOL_SIZE = 10  # server connections PgBouncer keeps per database and user
WORKERS, TRIALS, EPOCHS = 24, 48, 2
INI = """\
[databases]
* = host=127.0.0.1 port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {root}/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = {pool}
max_client_conn = 400
ignore_startup_parameters = options
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
"""


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(*argv) -> list[str]:
    """`argv` run as the postgres user when we are root (PostgreSQL refuses root), else as ourselves."""
    return ["runuser", "-u", "postgres", "--", *map(str, argv)] if os.geteuid() == 0 else list(map(str, argv))


def install_pgbouncer() -> str | None:
    """Install Debian's pgbouncer if it is missing; None when it is there, else why it cannot be."""
    if PGBOUNCER.exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "pgbouncer is not installed and this is no root Debian machine (apt-get install pgbouncer)"
    done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "pgbouncer"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if done.returncode != 0 or not PGBOUNCER.exists():
        return f"apt-get could not install pgbouncer: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


def start_postgres(root: Path) -> int:
    """initdb and start a PostgreSQL 15 in `root`/data (trust, max_connections 20); its port."""
    port = free_port()
    initdb = subprocess.run(as_postgres(PG_BIN / "initdb", "-D", root / "data", "-A", "trust", "-U",
                                        "postgres", "--no-sync"), capture_output=True, text=True, timeout=120)
    assert initdb.returncode == 0, initdb.stderr
    with open(root / "data" / "postgresql.conf", "a") as conf:  # fsync off: a throwaway server
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
                   f"max_connections = {MAX_CONNECTIONS}\nfsync = off\n")
    started = subprocess.run(as_postgres(PG_BIN / "pg_ctl", "-D", root / "data", "-l", root / "postgres.log",
                                         "-w", "start"), capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr + (root / "postgres.log").read_text()
    return port


def start_pgbouncer(root: Path, pg_port: int, ini: str = INI) -> int:
    """PgBouncer in transaction mode in front of the server at `pg_port`, its files in `root` (made);
    its port."""
    port = free_port()
    root.mkdir(exist_ok=True)
    (root / "userlist.txt").write_text('"postgres" ""\n')
    (root / "pgbouncer.ini").write_text(ini.format(pg_port=pg_port, port=port, root=root, pool=POOL_SIZE))
    user = []
    if os.geteuid() == 0:  # it refuses to run as root
        user = ["-u", "postgres"]
        for path in (root, *root.iterdir()):
            shutil.chown(path, "postgres")
    done = subprocess.run([PGBOUNCER, "-d", *user, root / "pgbouncer.ini"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while not _answers(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    return port


def _answers(port: int) -> bool:
    """Whether something accepts TCP connections on `port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def stop_pgbouncer(root: Path) -> None:
    """Stop the PgBouncer whose files are in `root`."""
    pid = root / "pgbouncer.pid"
    if pid.exists():
        try:
            os.kill(int(pid.read_text()), signal.SIGINT)  # its immediate shutdown
        except (ProcessLookupError, ValueError):
            pass


def stop(root: Path) -> None:
    """Stop PgBouncer and PostgreSQL started in `root`."""
    stop_pgbouncer(root / "bouncer")
    subprocess.run(as_postgres(PG_BIN / "pg_ctl", "-D", root / "data", "-m", "immediate", "stop"),
                   capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def servers():
    """(folder, PostgreSQL port, PgBouncer port): a private PostgreSQL 15 and a PgBouncer in transaction
    mode, stopped and removed after.

    Their folder is made by tempfile rather than in tmp_path: the postgres user runs them, and pytest's
    temporary folders are private to root."""
    need(PG_BIN.joinpath("initdb").exists(), f"no PostgreSQL 15 at {PG_BIN} (apt-get install postgresql-15)")
    missing = install_pgbouncer()
    need(missing is None, missing or "")
    need(os.geteuid() != 0 or shutil.which("runuser") is not None,
         "root without runuser cannot start PostgreSQL (as the postgres user)")
    root = Path(tempfile.mkdtemp(prefix="sweeper-pgbouncer-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    try:
        pg_port = start_postgres(root)
        yield root, pg_port, start_pgbouncer(root / "bouncer", pg_port)
    finally:
        stop(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database(servers):
    """(direct URL, URL through PgBouncer) of a fresh database on the private server, dropped after."""
    _, pg_port, bouncer_port = servers
    name = f"sweeper_{uuid.uuid4().hex[:10]}"
    admin = f"host=127.0.0.1 port={pg_port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
        conn.execute(f'alter database "{name}" set synchronous_commit = off')  # what sweeper's 'options' set
    yield (f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/{name}",
           f"postgresql+psycopg://postgres@127.0.0.1:{bouncer_port}/{name}")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


class Watch:
    """Samples, while workers run: each worker's client connections (PgBouncer's SHOW CLIENTS by
    application_name), PgBouncer's server connections and waiting clients, each worker's VmHWM."""

    def __init__(self, bouncer_port: int, database: str, procs: dict[str, subprocess.Popen]):
        self.procs, self.database = procs, database
        self.admin = psycopg.connect(f"host=127.0.0.1 port={bouncer_port} user=postgres dbname=pgbouncer",
                                     autocommit=True, prepare_threshold=None)  # its console: simple queries
        self.clients = {name: 0 for name in procs}
        self.servers = self.waiting = 0
        self.wait_s = 0.0  # the longest a client waited for a server connection
        self.hwm_kb = {name: 0 for name in procs}

    def sample(self) -> None:
        """One sample of everything."""
        counts = {}
        for row in self._show("CLIENTS"):
            if row["database"] == self.database:
                counts[row["application_name"]] = counts.get(row["application_name"], 0) + 1
        for name in self.clients:
            self.clients[name] = max(self.clients[name], counts.get(name, 0))
        for row in self._show("POOLS"):
            if row["database"] == self.database:
                self.servers = max(self.servers, row["sv_active"] + row["sv_idle"] + row["sv_used"])
                self.waiting = max(self.waiting, row["cl_waiting"])
                self.wait_s = max(self.wait_s, row["maxwait"] + row.get("maxwait_us", 0) / 1e6)
        for name, proc in self.procs.items():
            self.hwm_kb[name] = max(self.hwm_kb[name], _hwm_kb(proc.pid))

    def _show(self, what: str) -> list[dict]:
        """The rows of PgBouncer's SHOW `what`, by column name."""
        cursor = self.admin.execute(f"SHOW {what}")
        return [dict(zip([d.name for d in cursor.description], row)) for row in cursor.fetchall()]

    def until_done(self, timeout: float) -> None:
        """Sample every 0.1 s until every worker exited (or `timeout`)."""
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in self.procs.values()) and time.monotonic() < deadline:
            self.sample()
            time.sleep(0.1)
        self.admin.close()


def _hwm_kb(pid: int) -> int:
    """The peak resident memory (VmHWM) of a live process in kB; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def test_24_workers_through_pgbouncer_finish_the_study(database, servers, monkeypatch, capsys):
    """24 workers on a 20-connection server through PgBouncer: every trial and epoch row exactly once."""
    direct, pooled = database
    started = time.monotonic()
    # grace 30, not 5: with 5, 24 workers starting at once on 2 busy cores had 1-4 trials failed as stale
    # (and retried), straight to PostgreSQL as through PgBouncer; here no trial may fail.
    create(pooled, n_trials=TRIALS, epochs=EPOCHS, batch_size=32, width=8, heartbeat=1, grace=30)
    procs = {}
    try:
        for i in range(WORKERS):  # each worker's connections carry its name (libpq reads PGAPPNAME)
            monkeypatch.setenv("PGAPPNAME", f"w{i}")
            procs[f"w{i}"] = start_worker(pooled, "--worker-index", str(i))
        monkeypatch.delenv("PGAPPNAME")
        watch = Watch(servers[2], sa.engine.make_url(pooled).database, procs)
        watch.until_done(timeout=240)
        outs = finish(list(procs.values()), timeout=30)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    wall = time.monotonic() - started
    for out in outs:  # no worker error, no database call retried
        assert not re.search(r"Traceback|retrying|giving up|error:", out, re.IGNORECASE), out[-3000:]
    frame, _ = check_complete(direct, TRIALS, EPOCHS)
    assert len(frame) == TRIALS, frame[frame["state"] != "COMPLETE"][["trial", "state", "reason"]].to_string()
    assert 0 < max(watch.clients.values()) <= connections.PER_WORKER
    assert watch.servers <= POOL_SIZE
    hwm_mb = sorted(kb / 1024 for kb in watch.hwm_kb.values())
    with capsys.disabled():
        print(f"\npgbouncer: {WORKERS} workers, {TRIALS} trials x {EPOCHS} epochs in {wall:.1f} s (study "
              f"created, workers started and finished); client connections per worker at most "
              f"{max(watch.clients.values())} (min {min(watch.clients.values())}); server connections "
              f"at most {watch.servers} of pool {POOL_SIZE}; clients waiting at most {watch.waiting}, for "
              f"at most {watch.wait_s:.2f} s; VmHWM per worker {hwm_mb[0]:.0f}-{hwm_mb[-1]:.0f} MB (median "
              f"{statistics.median(hwm_mb):.0f}, sum {sum(hwm_mb) / 1024:.1f} GB)")


def test_warning_names_pgbouncer_when_the_server_has_too_few_connections(database, tmp_path):
    """Straight to the 20-connection server: 24 workers do not fit (a one-line warning), one does."""
    direct, _ = database
    text = connections.warning(direct, WORKERS)
    assert text is not None and "\n" not in text, text
    assert "PgBouncer" in text and "max_connections 20" in text and f"{WORKERS} workers" in text, text
    assert connections.warning(direct, 1) is None
    assert connections.warning(direct.replace("postgresql+psycopg", "postgresql"), 1) is None
    assert connections.warning(f"sqlite:///{tmp_path / 'sweeper.db'}", 1000) is None
    with pytest.raises(BadInput, match=r"^cannot reach storage .*: start the database or ") as caught:
        connections.warning(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", 2)
    assert "\n" not in str(caught.value)


def test_warning_is_none_through_pgbouncer(database):
    """Through PgBouncer, clients do not each take a server connection: no warning, however many."""
    _, pooled = database
    assert connections.warning(pooled, WORKERS) is None
    assert connections.warning(pooled, 1000) is None


def test_pgbouncer_without_ignore_startup_parameters_is_one_line_with_the_fix(servers):
    """PgBouncer refuses sweeper's 'options' startup parameter unless told to ignore it: the error says so."""
    root, pg_port, _ = servers
    port = start_pgbouncer(root / "strict", pg_port, INI.replace("ignore_startup_parameters = options\n", ""))
    try:
        with pytest.raises(BadInput, match="ignore_startup_parameters = options") as caught:
            rdb.check(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", create=True)
        assert "\n" not in str(caught.value)
    finally:
        stop_pgbouncer(root / "strict")


def test_storage_calls_through_pgbouncer_use_no_prepared_statements(database):
    """6 threads x 30 of Optuna's calls through PgBouncer 1.18 (no max_prepared_statements): psycopg's
    prepared statements would reach server connections that lack them. Optuna's calls, since each ends in
    a commit: psycopg forgets what it prepared at a rollback, which ends every read of sweeper's own."""
    _, pooled = database
    storage = rdb.open_storage(pooled, create=True, heartbeat=1, grace=3)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "p")
    trial_id = storage.create_new_trial(study_id)

    def call() -> None:
        for _ in range(30):
            storage.get_study_id_from_name("p")
            LeanRDBStorage.record_heartbeat(storage, trial_id)  # not the resilient one, which logs errors

    errors = in_threads(call, 6, storage.engine)
    assert not errors, repr(errors[0].__cause__ or errors[0])


def in_threads(work, n: int, engine: sa.Engine, timeout: float = 120) -> list[Exception]:
    """Run `work` in `n` threads at once (`timeout` seconds in all), then dispose of `engine`; what they raised."""
    errors = []

    def guarded() -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, daemon=True) for _ in range(n)]
    deadline = time.monotonic() + timeout
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0))
    finally:
        engine.dispose()
    return errors


def _engine(url: str) -> sa.Engine:
    """An engine as sweeper's storage makes them (storage.rdb.engine_kwargs)."""
    return sa.create_engine(url, **rdb.engine_kwargs(url))


def test_locks_exclude_through_transaction_pooling(database):
    """8 threads, each on its own client connection, take one lock 10 times each through PgBouncer: one
    holder at a time, and every release finds its lock still held."""
    _, pooled = database
    engine = _engine(pooled)
    inside, most, released = [0], [0], []
    count = threading.Lock()

    def contend() -> None:
        for _ in range(10):
            lock = locks.Lock(engine, "sweeper-test", 0, wait_s=20).acquire()
            with count:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.005)
            with count:
                inside[0] -= 1
            released.append(lock.release())

    errors = in_threads(contend, 8, engine)
    assert not errors, errors[0]
    assert len(released) == 80
    assert most[0] == 1 and all(released)


_HOLDER = textwrap.dedent("""
    import sys, time
    import sqlalchemy as sa
    from storage import locks, rdb
    engine = sa.create_engine(sys.argv[1], **rdb.engine_kwargs(sys.argv[1]))
    lock = locks.Lock(engine, "sweeper-test", 0).acquire()  # kept: never released
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
""")


@pytest.mark.parametrize("end", ["exit", "kill"])
def test_a_lock_through_pgbouncer_dies_with_its_process(database, end):
    """A process holding the lock through PgBouncer excludes others (wait_s: OperationalError); when it
    exits without releasing, or is killed, the lock is free within seconds."""
    _, pooled = database
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, pooled, "3" if end == "exit" else "60"],
                              stdout=subprocess.PIPE, text=True)
    engine = _engine(pooled)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="still held|lock timeout"):
            locks.Lock(engine, "sweeper-test", 0, wait_s=1).acquire()
        assert 1 <= time.monotonic() - started < 5
        if end == "kill":
            holder.kill()
        holder.wait(timeout=30)
        started = time.monotonic()
        with locks.Lock(engine, "sweeper-test", 0, wait_s=10) as lock:
            assert time.monotonic() - started < 5
        assert lock.release() is True
    finally:
        holder.kill()
        holder.wait()
        engine.dispose()


def test_more_waiters_than_server_connections_do_not_starve_the_holder(database):
    """The holder of a lock needs another server connection (to create its trial) while more processes
    wait for the lock than PgBouncer has server connections: waiters must not hold them while waiting."""
    _, pooled = database
    engine = sa.create_engine(pooled, **{**rdb.engine_kwargs(pooled), "pool_size": POOL_SIZE + 5})
    held = locks.Lock(engine, "sweeper-test", 0).acquire()
    waiters = [threading.Thread(target=lambda: locks.Lock(engine, "sweeper-test", 0, wait_s=30).acquire()
                                .release(), daemon=True) for _ in range(POOL_SIZE + 2)]
    try:
        for waiter in waiters:
            waiter.start()
        time.sleep(1)
        answered = []
        other = threading.Thread(target=lambda: answered.append(_select_1(engine)), daemon=True)
        other.start()
        other.join(timeout=10)
        assert answered == [1], "the holder's second connection got no server connection in 10 s"
    finally:
        held.release()
        deadline = time.monotonic() + 60
        for waiter in waiters:
            waiter.join(timeout=max(deadline - time.monotonic(), 0))
        engine.dispose()


def _select_1(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("select 1")).scalar()
