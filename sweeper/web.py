"""Serve optuna-dashboard on a storage with the standard library's threaded WSGI server, read-only, to known hosts."""

from __future__ import annotations

import errno
import socket
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from storage import rdb, urls
from storage.contract.errors import BadInput


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per request: the dashboard's page polls several endpoints at once."""

    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def get_environ(self) -> dict:
        """The request's environ, with the address of this machine that the request reached."""
        environ = super().get_environ()
        environ[REACHED] = self.connection.getsockname()[0]
        return environ


LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
READS = ("GET", "HEAD")
REACHED = "sweeper.reached_address"  # the environ key of the local address a request came in on


def guard(app, names: set[str], *, allow_writes: bool = False):
    """`app` answering only requests whose Host header is one of `names` or the address of this machine
    the request reached (a web page that rebinds its own domain to this address is refused; an address
    is no domain to rebind), and only reads unless `allow_writes` (optuna-dashboard asks for nothing
    before deleting a study)."""

    def guarded(environ, start_response):
        name = host_name(environ.get("HTTP_HOST", ""))
        reached = str(environ.get(REACHED, "")).lower().removeprefix("::ffff:")  # an IPv4 client of an IPv6 socket
        if name not in names and not (name and name == reached):
            return _refuse(start_response, "421 Misdirected Request",
                           f"host {name or '(none)'} is not this dashboard's: use one of {', '.join(sorted(names))} "
                           "(or start it with --allow-host NAME)")
        if environ.get("REQUEST_METHOD", "GET") not in READS and not allow_writes:
            return _refuse(start_response, "403 Forbidden",
                           "this dashboard is read-only: start it with --allow-writes to change or delete studies")
        return app(environ, start_response)

    return guarded


def host_name(header: str) -> str:
    """The host of a Host header, without its port: 'localhost:8080' -> 'localhost', '[::1]:80' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def known_names(host: str, extra: tuple[str, ...] = ()) -> set[str]:
    """The host names this server answers for: the local ones, --host's, this machine's names when it
    listens on every address, and --allow-host's (besides the address each request reached: `guard`)."""
    names = set(LOCAL_NAMES) | {host.lower()} | {e.lower() for e in extra}
    if host in ("0.0.0.0", "::", ""):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        try:
            names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
        except OSError:
            pass
    return names - {"", "0.0.0.0", "::"}


def _refuse(start_response, status: str, why: str):
    body = (why + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


def serve(url: str, *, host: str = "127.0.0.1", port: int = 8080, allow_writes: bool = False,
          allow_hosts: tuple[str, ...] = ()) -> None:
    """Run optuna-dashboard on the study storage at `url` until interrupted."""
    import optuna_dashboard

    from storage import artifacts

    storage = rdb.open_storage(url)
    names = known_names(host, allow_hosts)
    store = artifacts.existing(url)  # the trials' kept weights, listed and downloadable on their pages
    app = guard(optuna_dashboard.wsgi(storage, artifact_store=store), names, allow_writes=allow_writes)
    try:
        server = make_server(host, port, app, server_class=_Server, handler_class=_Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BadInput(f"port {port} on {host} is in use: pick another with --port") from None
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}: check --host") from None
    bound_host, bound_port = server.server_address[:2]
    mode = "read and write (--allow-writes)" if allow_writes else "read-only (--allow-writes to change studies)"
    everywhere = " and this machine's addresses" if host in ("0.0.0.0", "::", "") else ""
    print(f"optuna-dashboard on {urls.mask(url)}: http://{bound_host}:{bound_port}/ {mode}; answers for "
          f"{', '.join(sorted(names))}{everywhere} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
