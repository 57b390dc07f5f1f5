"""The TCP (and optional TLS) server that makes RouterState look like a RouterOS v7 router.

One thread accepts per listener and one thread serves each connection. A connection
must log in first (plain `/login =name= =password=`, or the pre-6.43 challenge when
`/login` comes with no words); anything else before that is answered with
`!fatal not logged in` and the socket is closed. Every reply ends in `!done`; `.tag` is
echoed on every reply sentence of a command that carried one, and only then.

Faults for tests (refuse_logins, drop_connections, delay, go_down/come_up) are plain
attributes and methods; see RouterOSEmulator.
"""

import contextlib
import datetime
import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time

from network.emulator.protocol import (
    ConnectionLost,
    ProtocolError,
    encode_sentence,
    read_sentence,
)
from network.emulator.state import (
    LOGIN_FAILED,
    ApiError,
    RouterState,
    format_id,
    parse_duration,
)

_MONITOR = "/interface/monitor-traffic"


class RouterOSEmulator:
    """A RouterOS v7 API endpoint in this process, for tests, demos and benchmarks.

    >>> with RouterOSEmulator(users={"admin": "secret"}) as emu:
    ...     api = librouteros.connect("127.0.0.1", "admin", "secret", port=emu.port)
    """

    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        users=None,
        state_file=None,
        tls_port=None,
        identity="MikroTik",
        version="7.16.2 (stable)",
        board_name="CCR2004-1G-12S+2XS",
        empty_reply=True,
    ):
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.users = dict(users) if users is not None else {"admin": ""}
        self.state_file = os.fspath(state_file) if state_file else None
        self.empty_reply = empty_reply
        self.lock = threading.RLock()
        self.state = RouterState(
            identity=identity, version=version, board_name=board_name, lock=self.lock
        )
        self.commands: list[tuple[str, str]] = []
        self.refuse_logins = False
        self.drop_connections = False
        self.delay = 0.0
        self.cert_file = None
        self._tls_context = None
        self._cert_dir = None
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._sessions: set[_Session] = set()
        self._sessions_lock = threading.Lock()
        self._up = False
        if self.state_file and os.path.exists(self.state_file):
            self.state.load(self.state_file)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def load(cls, state_file, **kwargs) -> "RouterOSEmulator":
        """An emulator holding the state saved in state_file (which must exist)."""
        if not os.path.exists(state_file):
            raise FileNotFoundError(state_file)
        return cls(state_file=state_file, **kwargs)

    def start(self) -> "RouterOSEmulator":
        if not self._up:
            if self.tls_port is not None and self._tls_context is None:
                self._tls_context = self._make_tls_context()
            self._listen()
        return self

    def stop(self):
        """Close the listeners and every client connection; save the state if there is a
        state file. Safe to call twice."""
        self._shut()
        if self.state_file:
            self.save()
        if self._cert_dir:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = self.cert_file = self._tls_context = None

    def go_down(self):
        """The router vanishes: connections are cut and new ones are refused. State stays."""
        self._shut()

    def come_up(self):
        """Listen again on the same port(s)."""
        self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def save(self, path=None):
        path = path or self.state_file
        if not path:
            raise ValueError("no state file to save to")
        self.state.save(path)

    def _listen(self):
        specs = [(self.port, False)]
        if self.tls_port is not None:
            specs.append((self.tls_port, True))
        bound = []
        try:
            for port, tls in specs:
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                listener = socket.create_server((self.host, port), family=family, backlog=128)
                listener.settimeout(0.5)
                bound.append((listener, tls))
        except OSError:
            for listener, _ in bound:
                listener.close()
            raise
        self._up = True
        for listener, tls in bound:
            if tls:
                self.tls_port = listener.getsockname()[1]
            else:
                self.port = listener.getsockname()[1]
            self._listeners.append(listener)
            thread = threading.Thread(
                target=self._accept_loop,
                args=(listener, tls),
                name=f"routeros-accept-{listener.getsockname()[1]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _shut(self):
        self._up = False
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._sessions_lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.close()
        threads, self._threads = self._threads, []
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)

    def _accept_loop(self, listener, tls):
        while True:
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                if listener.fileno() == -1:
                    return
                continue
            except OSError:
                return
            if self.drop_connections:
                sock.close()
                continue
            session = _Session(self, sock, tls)
            with self._sessions_lock:
                self._sessions.add(session)
            if not self._up:  # go_down() ran while this connection was being accepted
                session.close()
                self._forget(session)
                continue
            self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(
                target=session.run, name=f"routeros-session-{sock.fileno()}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _forget(self, session):
        with self._sessions_lock:
            self._sessions.discard(session)

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        with self._sessions_lock:
            return len(self._sessions)

    def _make_tls_context(self) -> ssl.SSLContext:
        """A server context with a fresh self-signed certificate written to a temp dir."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.state.identity)])
        now = datetime.datetime.now(datetime.UTC)
        alt_names = [x509.DNSName("localhost")]
        with contextlib.suppress(ValueError):
            alt_names.append(x509.IPAddress(ipaddress.ip_address(self.host)))
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .sign(key, hashes.SHA256())
        )
        self._cert_dir = tempfile.mkdtemp(prefix="routeros-emu-")
        self.cert_file = os.path.join(self._cert_dir, "cert.pem")
        key_file = os.path.join(self._cert_dir, "key.pem")
        with open(self.cert_file, "wb") as out:
            out.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, key_file)
        return context

    # ------------------------------------------------------------------ state access

    @property
    def cpu_load(self) -> int:
        return self.state.cpu_load

    @cpu_load.setter
    def cpu_load(self, value):
        self.state.cpu_load = int(value)

    @property
    def identity(self) -> str:
        return self.state.identity

    @identity.setter
    def identity(self, value):
        self.state.identity = value

    def rows(self, path) -> list[dict]:
        """A copy of a menu's rows as printed now (strings as on the wire, `.id` included)."""
        return self.state.rows(path)

    def add_row(self, path, **fields) -> str:
        """Add a row as `add` over the API would (same validation); returns its `.id`.
        Raises ValueError with the router's message. `remote_address=` may be spelled
        with an underscore."""
        with self.lock:
            menu = self.state.menu(path)
            if "add" not in menu.verbs:
                raise ValueError(f"{menu.path} has no add")
            try:
                return format_id(self.state.add(menu, _api_args(fields)))
            except ApiError as exc:
                raise ValueError(exc.message) from None

    def set_row(self, path, item, **fields):
        """Change a row (`item` is an `.id` or a name) as `set` over the API would."""
        with self.lock:
            menu = self.state.menu(path)
            self.state.hotspot.changed(menu.path, "set", {".id": str(item)})
            try:
                for row_id in self.state.resolve(menu, item):
                    self.state.update(menu, row_id, _api_args(fields))
            except ApiError as exc:
                raise ValueError(exc.message) from None

    def remove_row(self, path, item):
        """Remove a row (`item` is an `.id` or a name) as `remove` over the API would."""
        with self.lock:
            menu = self.state.menu(path)
            try:
                self.state.remove_items(menu, self.state.resolve(menu, item))
            except ApiError as exc:
                raise ValueError(exc.message) from None

    def dial_in(self, name, *, address=None, caller_id=None, service="pppoe") -> str:
        """A subscriber connects (PPPoE by default, or service="hotspot"); returns the
        `.id` of its /ppp/active (or /ip/hotspot/active) row."""
        return self.state.dial_in(name, address=address, caller_id=caller_id, service=service)

    def hang_up(self, name) -> bool:
        """End that subscriber's sessions; False when there was none."""
        return self.state.hang_up(name)

    def active_names(self) -> set[str]:
        return self.state.active_names()

    @property
    def hotspot(self):
        """Hotspot controls for tests (network.emulator.hotspot.Hotspot): login,
        cookie_login, set_rate, reboot."""
        return self.state.hotspot

    def reboot(self):
        """The router restarts: connections cut, hotspot and PPP sessions gone with the
        counters they had not handed to their users, session ids counted from the start."""
        self._shut()
        self.state.hotspot.reboot()
        self.start()

    def set_traffic(self, interface, rx_bps, tx_bps):
        self.state.set_traffic(interface, rx_bps, tx_bps)


def _api_args(fields: dict) -> dict:
    """Python keyword values as the strings librouteros would send."""
    out = {}
    for key, value in fields.items():
        if value is None:
            continue
        if value is True or value is False:
            value = "yes" if value else "no"
        out[key.replace("_", "-") if not key.startswith(".") else key] = str(value)
    return out


class _Session:
    """One client connection."""

    def __init__(self, emulator: RouterOSEmulator, sock: socket.socket, tls: bool):
        self.emu = emulator
        self.sock = sock
        self.tls = tls
        self.logged_in = False
        self.challenge = None
        self.closed = threading.Event()
        self.write_lock = threading.Lock()
        self.streams: dict[str | None, tuple[threading.Event, threading.Thread]] = {}

    def close(self):
        self.closed.set()
        for event, _ in list(self.streams.values()):
            event.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def run(self):
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                self.sock.settimeout(10)
                self.sock = self.emu._tls_context.wrap_socket(self.sock, server_side=True)
                self.sock.settimeout(None)
            if self.closed.is_set():
                return
            reader = self.sock.makefile("rb")
            try:
                while not self.closed.is_set():
                    words = read_sentence(reader)
                    if words is None:
                        break
                    if words and not self.handle(words):
                        break
            finally:
                reader.close()
        except (OSError, ProtocolError, ConnectionLost, ValueError):
            pass
        finally:
            self.close()
            self.emu._forget(self)

    # ------------------------------------------------------------------ replies

    def send(self, sentences, tag=None, *, delay=True):
        if delay and self.emu.delay:
            time.sleep(self.emu.delay)
        suffix = [f".tag={tag}"] if tag else []
        data = b"".join(encode_sentence([*words, *suffix]) for words in sentences)
        with self.write_lock:
            self.sock.sendall(data)

    @staticmethod
    def trap_sentences(error: ApiError):
        out = []
        for message, category in error.traps:
            words = ["!trap"]
            if category is not None:
                words.append(f"=category={category}")
            words.append(f"=message={message}")
            out.append(words)
        return out

    def fatal(self, reason):
        with contextlib.suppress(OSError):
            self.send([["!fatal", reason]])
        return False

    # ------------------------------------------------------------------ commands

    def handle(self, words) -> bool:
        """Answer one sentence; False ends the connection."""
        command, args, queries, tag = words[0], {}, [], None
        for word in words[1:]:
            if word.startswith("="):
                key, _, value = word[1:].partition("=")
                args[key] = value
            elif word.startswith("?"):
                queries.append(word)
            elif word.startswith(".tag="):
                tag = word[5:] or None
            elif word.startswith(".") and "=" in word:
                key, _, value = word.partition("=")
                args[key] = value
        path, _, verb = command.rpartition("/")
        self.emu.commands.append((path, verb))
        if command == "/quit":
            return self.fatal("session terminated on request")
        if command == "/login":
            self.login(args, tag)
            return True
        if not self.logged_in:
            return self.fatal("not logged in")
        if command == "/cancel":
            self.cancel(args.get("tag"), tag)
            return True
        try:
            reply = self.emu.state.execute(command, args, queries)
        except ApiError as error:
            self.send([*self.trap_sentences(error), ["!done"]], tag)
            return True
        if command == _MONITOR and "once" not in args:
            self.stream_monitor(args, tag)
            return True
        sentences = [["!re", *(f"={k}={v}" for k, v in row.items())] for row in reply.rows]
        if reply.listing and not reply.rows and self.emu.empty_reply:
            sentences.append(["!empty"])
        sentences.append(["!done", *(f"={k}={v}" for k, v in reply.done.items())])
        self.send(sentences, tag)
        return True

    def login(self, args, tag):
        users = self.emu.users
        name = args.get("name")
        if not args:
            self.challenge = os.urandom(16)
            self.send([["!done", f"=ret={self.challenge.hex()}"]], tag)
            return
        ok = False
        if name in users and "password" in args:
            ok = args["password"] == users[name]
        elif name in users and "response" in args and self.challenge:
            digest = hashlib.md5(
                b"\x00" + users[name].encode() + self.challenge, usedforsecurity=False
            ).hexdigest()
            ok = args["response"] == "00" + digest
        if ok and not self.emu.refuse_logins:
            self.logged_in = True
            self.send([["!done"]], tag)
        else:
            self.send([["!trap", f"=message={LOGIN_FAILED}"], ["!done"]], tag)

    def cancel(self, target, tag):
        keys = [target] if target is not None else list(self.streams)
        for key in keys:
            stream = self.streams.get(key)
            if stream:
                stream[0].set()
        for key in keys:
            stream = self.streams.get(key)
            if stream and stream[1] is not threading.current_thread():
                stream[1].join(timeout=3)
        self.send([["!done"]], tag)

    def stream_monitor(self, args, tag):
        """monitor-traffic without `once`: a `!re` batch every interval until /cancel
        (then `!trap interrupted`, `!done`), `duration` runs out, or the connection ends."""
        if tag in self.streams:
            self.streams[tag][0].set()
        stop = threading.Event()
        interval = _seconds(args.get("interval"), 1.0)
        duration = _seconds(args.get("duration"), None)

        def run():
            started = time.monotonic()
            try:
                while not self.closed.is_set():
                    try:
                        rows = self.emu.state.monitor_traffic(args)
                    except ApiError as error:
                        self.send([*self.trap_sentences(error), ["!done"]], tag)
                        return
                    self.send([["!re", *(f"={k}={v}" for k, v in r.items())] for r in rows], tag)
                    if duration is not None and time.monotonic() - started >= duration:
                        self.send([["!done"]], tag, delay=False)
                        return
                    if stop.wait(interval):
                        interrupted = ["!trap", "=category=2", "=message=interrupted"]
                        self.send([interrupted, ["!done"]], tag, delay=False)
                        return
            except OSError:
                return
            finally:
                if self.streams.get(tag, (None,))[0] is stop:
                    del self.streams[tag]

        thread = threading.Thread(target=run, name="routeros-monitor", daemon=True)
        self.streams[tag] = (stop, thread)
        thread.start()


def _seconds(text, default):
    if not text:
        return default
    seconds = parse_duration(text)
    return max(0.1, float(seconds)) if seconds is not None else default
