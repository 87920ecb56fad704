"""A throwaway PostgreSQL server on 127.0.0.1, for the demo, the tests and the benchmark.

It uses the server binaries found on the machine (`pg_config --bindir`, Debian's layout) and
otherwise those shipped in the `pgserver` wheel. `postgres` refuses to run as root, so when we are
root the server runs as the `postgres` system user (created if missing) and its files live in a
directory of their own under the system temp dir (root's pytest dirs are 0700).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "postgres"


def find_bindir() -> Path:
    """The folder holding initdb/pg_ctl/pg_dump: the machine's, else the pgserver wheel's."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    try:
        import pgserver  # type: ignore[import-not-found]

        candidate = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (candidate / "initdb").exists():
            return candidate
    except ImportError:
        pass
    raise RuntimeError(
        "no PostgreSQL server binaries found: install Debian's `postgresql` package "
        "or `pip install pgserver`"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """The OS user to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SUPERUSER], check=True)
    return SUPERUSER


@dataclass
class LocalPostgres:
    """One initdb'd cluster. Host connections need the password (so the password-file path of the
    scripts is exercised for real); socket connections are trusted, for administration."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgbackup-pg-")))
    port: int = field(default_factory=free_port)
    password: str = "local-demo-password"  # noqa: S105 (a throwaway server on loopback)
    bindir: Path = field(default_factory=find_bindir)

    def __post_init__(self) -> None:
        self.run_as = _server_user()
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.password_file = self.root / "password"

    # -- lifecycle ---------------------------------------------------------------------------
    def _as_server(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=True, **kwargs)  # type: ignore[call-overload, no-any-return]

    def init(self, extra_conf: str = "") -> LocalPostgres:
        self.sockets.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "initdb-password"
        pwfile.write_text(self.password + "\n")
        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)
        if self.run_as:
            info = pwd.getpwnam(self.run_as)
            for path in (self.root, self.sockets, pwfile):
                os.chown(path, info.pw_uid, info.pw_gid)
        self._as_server(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        pwfile.unlink()
        conf = (
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"unix_socket_directories = '{self.sockets}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "max_connections = 50\nshared_buffers = 128MB\n" + extra_conf
        )
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as handle:
            handle.write(conf)
        return self

    def start(self) -> LocalPostgres:
        self._as_server(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_server(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            )

    def destroy(self) -> None:
        """Stop the server and delete its data directory: the "cluster is lost" of the demo."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.init().start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- use ---------------------------------------------------------------------------------
    def env(self, database: str = "postgres") -> dict[str, str]:
        """The contract's libpq variables for a TCP client that reads the password from a file."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGDATABASE": database,
            "PGPASSWORD_FILE": str(self.password_file),
            "PGSSLMODE": "disable",
            "PG_BINDIR": str(self.bindir),
        }

    def psql(self, sql: str, database: str = "postgres", check: bool = True) -> str:
        """Run SQL over the trusted socket; returns unaligned, tuples-only output."""
        out = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                str(self.sockets),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"PostgreSQL on port {self.port} did not accept connections")
