"""Running the app for ``ratecast serve``: the listening socket is bound first, before the model is loaded (a port
in use is one clear line at once), then handed to uvicorn, which serves on it in this process or in several workers.
"""

from __future__ import annotations

import errno
import socket

from ..errors import RatecastError

#: the ASGI app factory every server process builds (it reads the run folder from the environment)
APP_FACTORY = "ratecast.serve.app:app_from_env"


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (port 0: any free one), bound as uvicorn binds its own. An address
    that cannot be bound (in use, not of this machine, not allowed) raises ``ValueError`` naming ``--host``/``--port``
    and their values."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0][4]
    except socket.gaierror as exc:
        raise ValueError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ValueError(f"--host {host} --port {port}: the address is already in use (another server listens "
                             "there); choose another --port or stop that server") from None
        raise ValueError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
    sock.set_inheritable(True)  # worker processes serve on it too
    return sock


def serve_on(sock: socket.socket, *, workers: int = 1, log_level: str = "warning") -> None:
    """Serve the app on the bound ``sock`` until interrupted: in this process, or in ``workers`` processes that
    share the socket. An app that fails to start raises :class:`RatecastError` (uvicorn has logged why)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level,
                            access_log=False)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()
            return
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except SystemExit:  # uvicorn's way out of a failed start-up
            if server.started:
                raise
        if not server.started:
            raise RatecastError("the server did not start: the app failed while loading the run (its error is "
                                "logged above)")
    except KeyboardInterrupt:  # Ctrl-C stops the server: a normal end
        pass
