"""What the CLI needs to know about a stack: namespace, object names, databases, bucket, app.

Built from the stack file (`Pulumi.<stack>.yaml`) so no operator ever types a namespace. The typed,
validated reading of the stack file is `infra.config.load_stack_config`; this module keeps only
what the operator CLI uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from jobs.errors import ExitCode, PgBackupError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DatabaseObjects:
    """One configured database and the Kubernetes objects that back it up."""

    name: str
    cronjob: str
    pvc: str
    configmap: str
    drill_cronjob: str


@dataclass(frozen=True)
class CrossStackGrant:
    """Read-only access to another stack's offsite sets, granted in this stack's config."""

    stack: str
    bucket: str
    prefix: str


@dataclass(frozen=True)
class StackContext:
    name: str
    namespace: str
    release: str
    databases: tuple[DatabaseObjects, ...]
    bucket: str
    prefix: str
    app_deployments: tuple[str, ...]
    backup_service_account: str
    restore_service_account: str
    endpoint_url: str = ""
    reader_credentials_secret: str = ""  # accessKey mode: the reader's Secret (else IRSA)
    aws_cli_image: str = ""
    postgres_image: str = ""
    cross_stack_read: tuple[CrossStackGrant, ...] = field(default_factory=tuple)

    def database(self, name: str | None) -> DatabaseObjects:
        """The named database, or the only one; a clear error otherwise."""
        if name is None:
            if len(self.databases) == 1:
                return self.databases[0]
            names = ", ".join(d.name for d in self.databases) or "none"
            raise PgBackupError(
                f"stack {self.name} has several databases ({names})",
                "name one with --database",
                ExitCode.USAGE,
            )
        for database in self.databases:
            if database.name == name:
                return database
        names = ", ".join(d.name for d in self.databases) or "none"
        raise PgBackupError(
            f"database {name} is not configured in stack {self.name} (configured: {names})",
            f"add it to pgbackup:databases in Pulumi.{self.name}.yaml or pick one of those",
            ExitCode.NOT_FOUND,
        )

    def grant_for(self, source_stack: str) -> CrossStackGrant:
        """This stack's read grant on another stack's backups (a CONFIG error naming the key)."""
        for grant in self.cross_stack_read:
            if grant.stack == source_stack:
                return grant
        raise PgBackupError(
            f"stack {self.name} has no read grant on stack {source_stack}'s backups",
            f"add {{stack: {source_stack}, bucketName, prefix}} to pgbackup:crossStackRead in "
            f"Pulumi.{self.name}.yaml and run `pulumi up -s {self.name}`",
            ExitCode.CONFIG,
        )


def project_dir() -> Path:
    """Where the stack files are: $PGBACKUP_PROJECT_DIR, the nearest Pulumi.yaml up from the
    current directory, else the checkout this package was installed from."""
    explicit = os.environ.get("PGBACKUP_PROJECT_DIR")
    if explicit:
        return Path(explicit)
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").exists():
            return candidate
    return PACKAGE_ROOT


def load_stack(stack: str, directory: Path | None = None) -> StackContext:
    """The stack context for `stack`, from its validated stack config."""
    from infra.config import load_stack_config

    config = load_stack_config(stack, directory or project_dir())
    credentials = config.offsite.credentials
    return StackContext(
        name=stack,
        namespace=config.namespace,
        release=config.release,
        databases=tuple(
            DatabaseObjects(
                d.name, d.cronjob_name, d.pvc_name, d.configmap_name, d.drill_cronjob_name
            )
            for d in config.databases
        ),
        bucket=config.offsite.bucket_name,
        prefix=config.offsite.prefix.strip("/"),
        endpoint_url=config.offsite.endpoint_url,
        app_deployments=tuple(config.app_deployments),
        backup_service_account=config.backup_service_account,
        restore_service_account=config.restore_service_account,
        reader_credentials_secret=(
            credentials.reader_secret_name if credentials.mode == "accessKey" else ""
        ),
        aws_cli_image=config.aws_cli_image,
        postgres_image=config.postgres_image,
        cross_stack_read=tuple(
            CrossStackGrant(g.stack, g.bucket_name, g.prefix.strip("/"))
            for g in config.cross_stack_read
        ),
    )
