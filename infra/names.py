"""Object names, in one place. The guide's names are what users already type (`kubectl get
cronjob vocab-app-postgres-backup`), so the first database keeps them exactly; a second database in
the same namespace adds its key as a suffix (`vocab-app-postgres-backup-analytics`,
`vocab-app-postgres-backup-pvc-analytics`, `vocab-app-postgres-backup-script-analytics`)."""

from __future__ import annotations

from dataclasses import dataclass

JOB_LABEL = {"app": "postgres-backup"}
RESTORE_LABEL = {"app": "postgres-restore"}


@dataclass(frozen=True)
class BackupBase:
    release: str
    suffix: str | None

    def _name(self, stem: str) -> str:
        name = f"{self.release}-{stem}"
        return f"{name}-{self.suffix}" if self.suffix else name


def backup_base(release: str, suffix: str | None) -> BackupBase:
    return BackupBase(release, suffix)


def cronjob(base: BackupBase) -> str:
    return base._name("postgres-backup")


def pvc(base: BackupBase) -> str:
    return base._name("postgres-backup-pvc")


def configmap(base: BackupBase) -> str:
    return base._name("postgres-backup-script")


def drill_cronjob(base: BackupBase) -> str:
    return base._name("postgres-restore-drill")


def alert_rule(base: BackupBase) -> str:
    return base._name("postgres-backup-alerts")


def backup_service_account(release: str) -> str:
    return f"{release}-postgres-backup"


def restore_service_account(release: str) -> str:
    return f"{release}-postgres-restore"


def restore_role(release: str) -> str:
    return f"{release}-postgres-restore"


def aws_secret(release: str, role: str) -> str:
    """The Kubernetes Secret holding an access key (credentials mode accessKey)."""
    return f"{release}-postgres-{role}-aws"


def iam_name(bucket: str, role: str) -> str:
    """IAM role/user names (64 characters at most). A long bucket name is cut from its start's
    end, never the role's: cutting the whole name would give writer and reader one name."""
    suffix = f"-{role}"
    return f"{bucket[: 64 - len(suffix)].rstrip('-.')}{suffix}"


def kms_alias(bucket: str) -> str:
    """The backup key's alias, after its bucket. Aliases take letters, digits, '/', '_' and '-'
    only: a bucket name's dots become dashes."""
    return f"alias/{bucket.replace('.', '-')}"
