"""Worker processes of `python -m serving --workers N`: each binds its own SO_REUSEPORT socket.

uvicorn's `--workers` shares one listening socket between the workers, and an asyncio worker that
wakes up accepts every pending connection at once (up to its backlog): a client opening 64
connections in a burst had all of them served by one of two workers. With SO_REUSEPORT each
worker listens on its own socket and the kernel spreads connections over them by their address
hash. The parent only holds the port (bound, never listening, so it is never handed a
connection), starts the workers, restarts one that dies, and stops them on SIGTERM/SIGINT. It
must never import the app or the model: they load in each worker.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import threading
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

# uvicorn's exit status for a worker whose app failed at startup: restarting would fail alike.
from uvicorn.config import STARTUP_FAILURE

CHECK_INTERVAL_SECONDS = 0.5


def reuseport_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def bind_reuseport(host: str, port: int, *, listen: bool, backlog: int = 2048) -> socket.socket:
    """A TCP socket on host:port with SO_REUSEPORT, listening or only holding the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _run_worker(config_kwargs: dict[str, Any]) -> None:
    """One worker (a spawned process): its own listening socket, then uvicorn on it."""
    import uvicorn

    config = uvicorn.Config(**config_kwargs)
    sock = bind_reuseport(config.host, config.port, listen=True, backlog=config.backlog)
    uvicorn.Server(config).run(sockets=[sock])


class WorkerSupervisor:
    """Starts `workers` processes serving `config_kwargs` (uvicorn.Config arguments), keeps them
    running and stops them. `run()` returns the process exit status."""

    def __init__(self, config_kwargs: dict[str, Any], workers: int) -> None:
        self._config = config_kwargs
        self._workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess] = []
        self._stop = threading.Event()

    def _start_one(self) -> BaseProcess:
        process = self._context.Process(target=_run_worker, args=(self._config,), daemon=False)
        process.start()
        return process

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def run(self) -> int:
        host, port = self._config["host"], self._config["port"]
        try:
            # Fails fast when the port is taken; holding it keeps it ours between restarts.
            holder = bind_reuseport(host, port, listen=False)
        except OSError as exc:
            print(f"serving: cannot bind {host}:{port}: {exc.strerror}", file=sys.stderr)
            return 1
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        status = 0
        try:
            self._processes = [self._start_one() for _ in range(self._workers)]
            while not self._stop.wait(CHECK_INTERVAL_SECONDS):
                for i, process in enumerate(self._processes):
                    if process.is_alive():
                        continue
                    if process.exitcode == STARTUP_FAILURE:
                        print("serving: a worker failed to start; stopping", file=sys.stderr)
                        status = 1
                        self._stop.set()
                        break
                    self._processes[i] = self._start_one()
        finally:
            self._terminate(float(self._config.get("timeout_graceful_shutdown") or 30) + 5)
            holder.close()
        return status

    def _terminate(self, timeout: float) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn's graceful shutdown in the worker
        for process in self._processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(5)
