"""What every pipeline needs: the server under test, the database, a scratch folder, and the two
process environments (one for plain PostgreSQL tools, one for our scripts per the contract)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from jobs.local.postgres import LocalPostgres

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "jobs" / "scripts"


@dataclass
class BenchContext:
    pg: LocalPostgres
    database: str
    workdir: Path
    jobs: int  # the parallelism of the "limit" rows: the machine's cores, as the pod's CPU limit
    scripts_dir: Path = SCRIPTS

    @property
    def backup_dir(self) -> Path:
        return self.workdir / "backups"

    @property
    def pgpass(self) -> Path:
        """A 0600 libpq password file for the plain tools (the scripts make their own)."""
        path = self.workdir / f"pgpass-{self.pg.port}"
        if not path.exists():
            path.write_text(f"127.0.0.1:{self.pg.port}:*:postgres:{self.pg.password}\n")
            path.chmod(0o600)
        return path

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "S3_"))}
        env["PATH"] = f"{self.pg.bindir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def tool_env(self, database: str | None = None) -> dict[str, str]:
        """libpq variables for pg_dump/psql/pg_restore run directly (the guide's and the limits)."""
        env = self._base_env()
        env.update(self.pg.env(database or self.database))
        env.pop("PGPASSWORD_FILE", None)
        env["PGPASSFILE"] = str(self.pgpass)
        return env

    def script_env(self, **extra: str) -> dict[str, str]:
        """The contract's environment for our scripts, with their shipped defaults otherwise.
        CPU_LIMIT stands in for the downward API of a pod limited to this machine's cores."""
        env = self._base_env()
        env.update(self.pg.env(self.database))
        env["BACKUP_DIR"] = str(self.backup_dir)
        env["CPU_LIMIT"] = str(self.jobs)
        env["TMPDIR"] = str(self.workdir)
        env.update(extra)
        return env

    def psql_cmd(self, database: str) -> str:
        """A psql invocation over TCP with the password file (as the app and the guide connect)."""
        return f"psql -X -q -v ON_ERROR_STOP=1 -d {shlex.quote(database)}"

    def script(self, name: str) -> Path:
        return self.scripts_dir / name
