"""`audit serve --workers N`: N uvicorn processes, each accepting on its own SO_REUSEPORT socket.

Why not uvicorn's (or gunicorn's) own workers: they share ONE listening socket, and whichever worker
is woken accepts. Clients that keep their connection open (an EHR interface, a load balancer's pool,
wrk) are then spread by chance: measured with 16 keep-alive connections on two workers, the split was
8/8 in one run and 16/0 in the next, when the second worker sat idle. With SO_REUSEPORT each worker
has its own socket on the same port and the kernel spreads new connections across them by a hash of
the client's address, so the workers share the load. Linux only (the service's platform).

The supervisor restarts a worker that dies (as uvicorn's does), and on SIGTERM or SIGINT stops them
all: each finishes its requests in flight (uvicorn's graceful shutdown). One of the workers signs
checkpoints, elected through PostgreSQL (audit.ledger.signer); if it dies, another takes over.
"""

from __future__ import annotations

import logging
import logging.config
import multiprocessing
import signal
import socket
import sys
import threading
from multiprocessing.context import SpawnProcess
from typing import Any

APP = "audit.main:create_app"
BACKLOG = 2048
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that could not start: restarting cannot help
log = logging.getLogger("audit.workers")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket on (host, port) that other workers may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int, log_config: dict[str, Any]) -> None:
    """One worker process: its own socket, then uvicorn's server on it."""
    import uvicorn

    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    config = uvicorn.Config(APP, factory=True, log_config=log_config, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def serve(host: str, port: int, workers: int, log_config: dict[str, Any]) -> None:
    """Run `workers` processes until SIGTERM or SIGINT; a worker that dies is replaced."""
    logging.config.dictConfig(log_config)
    _refuse_a_taken_port(host, port)
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def start() -> SpawnProcess:
        process = context.Process(target=_worker, args=(host, port, log_config), daemon=False)
        process.start()
        return process

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: stopping the workers", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    processes = [start() for _ in range(workers)]
    while not stop.wait(0.5):
        for i, process in enumerate(processes):
            if process.is_alive():
                continue
            if process.exitcode == STARTUP_FAILURE:
                log.error("worker %s could not start: stopping", process.pid)
                stop.set()
                break
            log.warning("worker %s exited with %s: starting another", process.pid, process.exitcode)
            processes[i] = start()
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()


def _refuse_a_taken_port(host: str, port: int) -> None:
    """Bind once WITHOUT SO_REUSEPORT: a port held by anything, another `audit serve` included (whose
    workers would otherwise share it silently), fails here with the OS's message."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as check:
        check.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            check.bind((host, port))
        except OSError as exc:
            log.error("cannot listen on %s:%s: %s", host, port, exc)
            raise SystemExit(1) from exc
