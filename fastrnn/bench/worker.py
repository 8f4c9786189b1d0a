"""The worker protocol: each engine in a process of its own, driven over a pipe.

The thread pools of different libraries (OpenMP, oneDNN, ONNX Runtime's own)
spin while they wait for work and would steal each other's cores if they
shared a process, so every engine gets a worker started with the ``spawn``
context.  The parent sends one command at a time and waits for the reply:
only one worker runs at a time.

Replies: ``("ready", version)`` or ``("unavailable", reason)`` first; then
per command ``("ok", value)``, ``("unsupported", reason)`` or ``("error",
traceback)``.  Commands: ``("prepare", case, weights, inputs,
outputs_wanted, target)`` -> ``{"outputs": dict or None, "reps": int}``;
``("time", reps)`` -> seconds per call; ``("release",)``; ``("stop",)``.
"""

import signal
import time
import traceback

import numpy as np

from fastrnn.bench.engines import Unsupported, engine_class


def calibrate(call, target):
    """Warm up, then the number of calls that lasts about ``target`` seconds."""
    start = time.perf_counter()
    call()                                  # first call: allocations, lazy setup
    first = time.perf_counter() - start
    best, spent, calls = first, first, 0
    while calls < 3 and spent < target:
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return max(1, min(10 ** 6, round(target / max(best, 1e-9))))


def worker_main(engine_name, conn):
    """Serve one engine's commands until told to stop (the worker process's body)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C: the parent stops us
    try:
        engine = engine_class(engine_name)()
        version = engine.load()
    except Exception as e:                  # not installed, or broken: skipped
        conn.send(("unavailable", f"{type(e).__name__}: {e}"))
        conn.close()
        return
    conn.send(("ready", version))
    prepared = None
    while True:
        try:
            command, *args = conn.recv()
        except EOFError:
            return
        if command == "stop":
            conn.close()
            return
        try:
            if command == "prepare":
                case, weights, inputs, outputs_wanted, target = args
                prepared = None             # free the last case's arrays first
                prepared = engine.prepare(case, weights, inputs)
                outputs = None
                if outputs_wanted:
                    outputs = {k: np.array(v) for k, v in
                               prepared.collect(prepared.call()).items()}
                reps = calibrate(prepared.call, target) if target else None
                reply = {"outputs": outputs, "reps": reps}
            elif command == "time":
                (reps,) = args
                call = prepared.call
                start = time.perf_counter()
                for _ in range(reps):
                    call()
                reply = (time.perf_counter() - start) / reps
            elif command == "release":
                prepared = None
                reply = None
            else:
                raise ValueError(f"unknown command {command!r}")
            conn.send(("ok", reply))
        except Unsupported as e:
            conn.send(("unsupported", str(e)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class EngineError(Exception):
    """An engine raised, or its worker died."""


class Worker:
    """The parent's end of one engine's worker process.

    Parameters
    ----------
    name : str
        A name of ``ENGINES`` or ``module:Class``.
    context : multiprocessing context
        ``spawn``.
    """

    def __init__(self, name, context):
        self.name = name
        self.cls = engine_class(name)
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker_main, args=(name, child),
                                       name=f"fastrnn-bench-{name}", daemon=True)
        self.process.start()
        child.close()
        self.status, self.detail, self.dead = None, None, False

    def wait_ready(self):
        """Wait for the worker to load its library; return (status, version or reason)."""
        try:
            self.status, self.detail = self.conn.recv()
        except EOFError:
            self.status, self.detail = "unavailable", "the worker process died while loading"
        if self.status != "ready":
            self.stop()
        return self.status, self.detail

    def request(self, *command):
        """Send a command, return its value; raise Unsupported or EngineError."""
        if self.dead:
            raise EngineError(f"{self.name}: its worker process died earlier")
        try:
            self.conn.send(command)
            status, value = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self.dead = True
            code = self.process.exitcode
            raise EngineError(f"{self.name}: the worker process died (exit code {code})")
        if status == "unsupported":
            raise Unsupported(value)
        if status == "error":
            raise EngineError(f"{self.name} raised:\n{value}")
        return value

    def stop(self):
        """Ask the worker to stop; terminate it if it does not within 10 s."""
        if self.process.is_alive() and not self.dead and self.status == "ready":
            try:
                self.conn.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()
