"""Serve optuna-dashboard on a storage with the standard library's WSGI server (threaded)."""

from __future__ import annotations

import errno
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


def serve(url: str, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run optuna-dashboard on the study storage at `url` until interrupted."""
    import optuna_dashboard

    storage = rdb.open_storage(url)
    app = optuna_dashboard.wsgi(storage)
    try:
        server = make_server(host, port, app, server_class=_Server, handler_class=_Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BadInput(f"port {port} on {host} is in use: pick another with --port") from None
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}: check --host") from None
    bound_host, bound_port = server.server_address[:2]
    print(f"optuna-dashboard on {urls.mask(url)}: http://{bound_host}:{bound_port}/ (Ctrl-C stops it)",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
