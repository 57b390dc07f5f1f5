"""A RouterOS emulator in a process of its own, as a real router is: for benchmarks whose
figures must not depend on the emulator sharing a CPU thread (and the GIL) with the code
being measured. Controlled over a pipe; nothing here needs Django.

The child logs every write it applies, stamped with time.monotonic() (one clock for all
processes of the machine) together with the rows it changed as they were before, so a
benchmark learns when the router changed without polling it.
"""

import contextlib
import multiprocessing
import threading
import time


class EmulatorProcess:
    """>>> emu = EmulatorProcess(users={"admin": "pw"}); emu.port; ...; emu.stop()

    Spawned, not forked: a fork would run the parent's after-fork hooks in the child
    (kombu's, for one, closes the broker connections it inherited, and can block)."""

    def __init__(self, users: dict, start_timeout: float = 30.0):
        parent, child = multiprocessing.Pipe()
        context = multiprocessing.get_context("spawn")
        self.proc = context.Process(target=_serve, args=(child, dict(users)), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        # One request and its answer at a time: a benchmark's watcher thread and its
        # main thread share the pipe, and interleaved messages corrupt it.
        self._lock = threading.Lock()
        if not parent.poll(start_timeout):
            self.proc.kill()
            raise RuntimeError("the emulator process did not start")
        self.port = parent.recv()

    def _call(self, *request):
        with self._lock:
            self.conn.send(request)
            return self.conn.recv()

    def dial_in(self, sessions) -> None:
        """Subscribers connect: `sessions` is a list of (name, address)."""
        self._call("dial", list(sessions))

    def command_count(self) -> int:
        """API commands received so far (logins included)."""
        return self._call("commands")

    def writes(self, since: int = 0) -> list[tuple]:
        """Writes applied, from the `since`-th on: (at, path, verb, args, rows before)."""
        return self._call("writes", since)

    def rows(self, path) -> list[dict]:
        return self._call("rows", path)

    def stop(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(EOFError, OSError):
                self._call("stop")
            self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
        self.conn.close()


_WRITES = {"add", "set", "remove", "enable", "disable", "unset"}


def _serve(conn, users) -> None:
    from network.emulator import RouterOSEmulator
    from network.emulator.state import ApiError

    emulator = RouterOSEmulator(port=0, users=users).start()
    state, log = emulator.state, []
    execute = state.execute

    def logged(command, args, queries=()):
        path, _, verb = command.rpartition("/")
        if verb not in _WRITES or path not in state.menus:
            return execute(command, args, queries)
        with state.lock:
            menu, before = state.menus[path], []
            target = args.get(".id", args.get("numbers"))
            if target is not None:
                # An unknown id: the command itself answers with the router's error.
                with contextlib.suppress(ApiError):
                    before = [dict(menu.rows[i]) for i in state.resolve(menu, target)]
            reply = execute(command, args, queries)
            log.append((time.monotonic(), path, verb, dict(args), before))
            return reply

    state.execute = logged
    conn.send(emulator.port)
    try:
        while True:
            request = conn.recv()
            if request[0] == "stop":
                conn.send(True)
                break
            if request[0] == "dial":
                for name, address in request[1]:
                    emulator.dial_in(name, address=address)
                conn.send(True)
            elif request[0] == "commands":
                conn.send(len(emulator.commands))
            elif request[0] == "writes":
                conn.send(log[request[1] :])
            elif request[0] == "rows":
                conn.send(emulator.rows(request[1]))
    except EOFError:  # the parent went away
        pass
    finally:
        emulator.stop()
