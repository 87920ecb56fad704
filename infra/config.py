"""The stack's configuration: typed, validated once, every error naming the key at fault.

Two ways in, one parser:
- under Pulumi (`pulumi up`, the mock runtime): `from_pulumi()` reads `pulumi.Config("pgbackup")`;
- offline (the operator CLI, docs, tests): `load_stack_config(stack)` reads `Pulumi.<stack>.yaml`
  plus the defaults of `Pulumi.yaml`. `secure:` values cannot be decrypted there and become
  placeholders.

Both hand a plain mapping to `parse_stack_config`, so the two always agree; it returns the typed
values of `infra.config_model` (re-exported here). Defaults of nested
fields live here (the Pulumi CLI does not type nested fields); top-level defaults are also stated in
`Pulumi.yaml` so `pulumi config` shows them (a test keeps the two equal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infra import names
from infra.config_model import (
    AlertsConfig,
    CredentialsConfig,
    CrossStackRead,
    DatabaseConfig,
    DrillConfig,
    ObjectLockConfig,
    OffsiteConfig,
    PostgresConfig,
    Resources,
    SecretRef,
    StackConfig,
    TransitionConfig,
)
from infra.validate import (
    ConfigError,
    Reader,
    check_bucket_name,
    check_compression,
    check_cron,
    check_dns_label,
    check_endpoint_url,
    check_image,
    check_labels,
    check_quantity,
    check_time_zone,
    quantity_value,
)

__all__ = [
    "ConfigError",
    "CredentialsConfig",
    "DatabaseConfig",
    "ObjectLockConfig",
    "OffsiteConfig",
    "PostgresConfig",
    "SecretRef",
    "StackConfig",
    "load_stack_config",
    "parse_stack_config",
    "raw_stack_config",
]

NAMESPACE = "pgbackup"
PROJECT_DIR = Path(__file__).resolve().parent.parent
SECRET_PLACEHOLDER = "[secret: {key}, not decrypted offline]"  # noqa: S105 (a label)
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
CREDENTIAL_MODES = ("irsa", "accessKey")
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
# Classes a restore can read at once. GLACIER and DEEP_ARCHIVE objects must first be restored
# (RestoreObject, hours), which no step does: a set moved there could not be fetched in a disaster.
STORAGE_CLASSES = ("STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR")
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
# S3 refuses a transition to the infrequent-access classes before an object is 30 days old.
MIN_TRANSITION_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30}
# Top-level keys and their defaults (mirrored by Pulumi.yaml's `default:` entries).
TOP_LEVEL_DEFAULTS: dict[str, Any] = {
    "release": "vocab-app",
    "appDeployments": [],
    "operatorGroup": "",
    "crossStackRead": [],
    "drill": {},
    "alerts": {},
}
# An S3 key prefix: no leading or trailing slash, never empty (IAM grants are scoped by it).
PREFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*[^/]$|^[A-Za-z0-9]$"
# Kubernetes leaves 11 characters of a Job's 63 to the CronJob's suffix.
MAX_CRONJOB_NAME = 52
# A stack name as Pulumi spells it; the restore steps also make it a folder name (fetch.sh and
# restore.sh refuse any other).
STACK_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
REQUIRED_KEYS = ("namespace", "images", "postgres", "databases", "offsite")
SECRET_KEYS = ("kubeconfig",)
OPTIONAL_KEYS = ("kubeContext",)
ALL_KEYS = tuple(TOP_LEVEL_DEFAULTS) + REQUIRED_KEYS + SECRET_KEYS + OPTIONAL_KEYS


# ---------------------------------------------------------------------------------------------
# Parsing


def _resources(r: Reader, key: str, default: Resources) -> Resources:
    sub = r.obj(key, {})
    sub.allow("requests", "limits")
    req = sub.obj("requests", {})
    lim = sub.obj("limits", {})
    req.allow("cpu", "memory")
    lim.allow("cpu", "memory")
    values = Resources(
        requests_cpu=check_quantity(req, "cpu", default.requests_cpu, of="cpu"),
        requests_memory=check_quantity(req, "memory", default.requests_memory, of="memory"),
        limits_cpu=check_quantity(lim, "cpu", default.limits_cpu, of="cpu"),
        limits_memory=check_quantity(lim, "memory", default.limits_memory, of="memory"),
    )
    for kind, request, limit in (
        ("cpu", values.requests_cpu, values.limits_cpu),
        ("memory", values.requests_memory, values.limits_memory),
    ):
        if quantity_value(request) > quantity_value(limit):
            sub.fail(
                f"requests.{kind}",
                f"{request} is above the limit {limit} (the API server refuses the pod)",
                f"lower requests.{kind} or raise limits.{kind}",
            )
    return values


# From `make bench` (README, Performance): a backup is pg_dump -j2 with zstd -T2 compressing each
# finished table file beside it, CPU-bound on both cores, so the CPU limit is 2 (DUMP_JOBS follows
# it through the downward API); the request stays low because it runs at night. The largest
# process of a backup or restore peaked at 18-19 MiB on the 1.7 GB fixture; client
# memory grows with the number of objects, not data size: 1Gi leaves room for large catalogs.
DEFAULT_BACKUP_RESOURCES = Resources("250m", "256Mi", "2", "1Gi")
DEFAULT_UPLOAD_RESOURCES = Resources("100m", "128Mi", "1", "512Mi")


def _database(r: Reader, index: int, release: str, seen: set[str]) -> DatabaseConfig:
    r.allow(
        "name",
        "key",
        "schedule",
        "timeZone",
        "retentionDays",
        "keepMin",
        "storageSize",
        "storageClass",
        "compression",
        "dumpJobs",
        "resources",
        "uploadResources",
        "startingDeadlineSeconds",
        "activeDeadlineSeconds",
        "backoffLimit",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
        "ttlSecondsAfterFinished",
        "importPvc",
        "suspend",
    )
    name = r.string("name", pattern=r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$", example="vocab_app_staging")
    key = r.string("key", default=name.replace("_", "-").lower())
    check_dns_label(r, "key", key, max_len=20)
    if key in seen:
        r.fail("key", f"{key!r} is used by another database", "give each database its own key")
    seen.add(key)
    schedule = check_cron(r, "schedule", "0 2 * * *")
    history_ok = r.number("successfulJobsHistoryLimit", default=3, minimum=1, maximum=100)
    history_failed = r.number("failedJobsHistoryLimit", default=3, minimum=1, maximum=100)
    ttl = r.number("ttlSecondsAfterFinished", default=8 * 86400, minimum=3600)
    retention = r.number("retentionDays", default=30, minimum=1)
    base = names.backup_base(release, key if index > 0 else None)
    return DatabaseConfig(
        index=index,
        key=key,
        name=name,
        schedule=schedule,
        time_zone=check_time_zone(r, "timeZone", "Etc/UTC"),
        retention_days=retention,
        keep_min=r.number("keepMin", default=7, minimum=1),
        storage_size=check_quantity(r, "storageSize", "30Gi", of="storage"),
        storage_class=r.opt_string("storageClass"),
        compression=check_compression(r, "compression", "auto"),
        dump_jobs=r.opt_number("dumpJobs", minimum=1, maximum=64),
        resources=_resources(r, "resources", DEFAULT_BACKUP_RESOURCES),
        upload_resources=_resources(r, "uploadResources", DEFAULT_UPLOAD_RESOURCES),
        starting_deadline_seconds=r.number("startingDeadlineSeconds", default=3600, minimum=10),
        active_deadline_seconds=r.number("activeDeadlineSeconds", default=6 * 3600, minimum=60),
        backoff_limit=r.number("backoffLimit", default=1, minimum=0, maximum=10),
        successful_jobs_history_limit=history_ok,
        failed_jobs_history_limit=history_failed,
        ttl_seconds_after_finished=ttl,
        import_pvc=r.flag("importPvc", default=False),
        suspend=r.flag("suspend", default=False),
        cronjob_name=names.cronjob(base),
        pvc_name=names.pvc(base),
        configmap_name=names.configmap(base),
        drill_cronjob_name=names.drill_cronjob(base),
        alert_rule_name=names.alert_rule(base),
    )


def _secret_ref(r: Reader, key: str, required: bool) -> SecretRef | None:
    if not required and r.raw.get(key) in (None, "", {}):
        return None
    sub = r.obj(key, None)
    sub.allow("name", "key")
    return SecretRef(
        name=check_dns_label(sub, "name", sub.string("name", example="vocab-app-postgres"), 253),
        key=sub.string("key", pattern=r"^[-._a-zA-Z0-9]+$", example="postgres-password"),
    )


def _postgres(r: Reader) -> PostgresConfig:
    r.allow("host", "port", "user", "passwordSecret", "sslMode", "sslRootCertSecret")
    password = _secret_ref(r, "passwordSecret", required=True)
    assert password is not None
    return PostgresConfig(
        host=r.string("host", example="vocab-app-postgres"),
        port=r.number("port", default=5432, minimum=1, maximum=65535),
        user=r.string("user", default="postgres"),
        password_secret=password,
        ssl_mode=r.choice("sslMode", SSL_MODES, default="prefer"),
        ssl_root_cert_secret=_secret_ref(r, "sslRootCertSecret", required=False),
    )


def _credentials(r: Reader, release: str) -> CredentialsConfig:
    r.allow("mode", "oidcProviderArn", "oidcIssuer", "accessKeySecret", "readerAccessKeySecret")
    mode = r.choice("mode", CREDENTIAL_MODES, default="irsa")
    provider_arn = r.opt_string("oidcProviderArn")
    issuer = r.opt_string("oidcIssuer")
    if mode == "irsa":
        if provider_arn is None:
            r.fail(
                "oidcProviderArn",
                "is required when mode is irsa",
                "set it to the cluster's IAM OIDC provider ARN, or use mode: accessKey",
            )
        if not (provider_arn or "").startswith("arn:aws"):
            r.fail("oidcProviderArn", f"{provider_arn!r} is not an ARN", "use arn:aws:iam::...")
        if issuer is None:
            r.fail(
                "oidcIssuer",
                "is required when mode is irsa",
                "set it to the issuer host/path, e.g. oidc.eks.eu-west-1.amazonaws.com/id/XYZ",
            )
        issuer = (issuer or "").removeprefix("https://")
    writer_secret = r.string("accessKeySecret", default=names.aws_secret(release, "backup"))
    reader_secret = r.string("readerAccessKeySecret", default=names.aws_secret(release, "restore"))
    check_dns_label(r, "accessKeySecret", writer_secret, 253)
    check_dns_label(r, "readerAccessKeySecret", reader_secret, 253)
    return CredentialsConfig(mode, provider_arn, issuer, writer_secret, reader_secret)


def _offsite(r: Reader, release: str) -> OffsiteConfig:
    r.allow(
        "bucketName",
        "prefix",
        "retentionDays",
        "noncurrentDays",
        "abortMultipartDays",
        "transition",
        "objectLock",
        "credentials",
        "endpointUrl",
        "kmsDeletionWindowDays",
    )
    bucket = check_bucket_name(r, "bucketName")
    prefix = r.string("prefix", default="postgres", pattern=PREFIX_PATTERN)
    retention = r.number("retentionDays", default=90, minimum=1)
    transition = None
    if r.raw.get("transition") not in (None, {}):
        t = r.obj("transition", None)
        t.allow("days", "storageClass")
        if t.raw.get("storageClass") in ARCHIVE_CLASSES:
            t.fail(
                "storageClass",
                f"{t.raw['storageClass']} objects cannot be read without a restore request "
                "that takes hours, so a disaster recovery could not fetch them",
                "use GLACIER_IR (instant retrieval) or STANDARD_IA",
            )
        storage_class = t.choice("storageClass", STORAGE_CLASSES)
        days = t.number("days", minimum=MIN_TRANSITION_DAYS.get(storage_class, 1))
        if days >= retention:
            t.fail(
                "days",
                f"{days} is not before the offsite retention ({retention} days)",
                "transition earlier than offsite.retentionDays, or drop the transition",
            )
        transition = TransitionConfig(days, storage_class)
    lock = None
    if r.raw.get("objectLock") not in (None, {}):
        lk = r.obj("objectLock", None)
        lk.allow("mode", "days")
        if lk.raw.get("mode") in (None, ""):
            lk.fail("mode", "is missing", "set mode: COMPLIANCE or GOVERNANCE (or drop objectLock)")
        mode = lk.choice("mode", LOCK_MODES)
        days = lk.number("days", minimum=1)
        if days < retention:
            lk.fail(
                "days",
                f"{days} is shorter than offsite.retentionDays ({retention})",
                f"set objectLock.days to at least {retention}",
            )
        lock = ObjectLockConfig(mode, days)
    return OffsiteConfig(
        bucket_name=bucket,
        prefix=prefix,
        retention_days=retention,
        noncurrent_days=r.number("noncurrentDays", default=7, minimum=1),
        abort_multipart_days=r.number("abortMultipartDays", default=7, minimum=1),
        transition=transition,
        object_lock=lock,
        credentials=_credentials(r.obj("credentials", {}), release),
        endpoint_url=check_endpoint_url(r, "endpointUrl"),
        kms_deletion_window_days=r.number(
            "kmsDeletionWindowDays", default=30, minimum=7, maximum=30
        ),
    )


def _cross_stack(r: Reader) -> CrossStackRead:
    r.allow("stack", "bucketName", "prefix", "kmsKeyArn")
    return CrossStackRead(
        stack=r.string("stack", pattern=STACK_NAME_PATTERN, example="production"),
        bucket_name=check_bucket_name(r, "bucketName"),
        # Validated like our own: an empty or "/" prefix would grant read on the whole bucket.
        prefix=r.string("prefix", default="postgres", pattern=PREFIX_PATTERN),
        kms_key_arn=r.opt_string("kmsKeyArn"),
    )


def _alerts(r: Reader) -> AlertsConfig:
    r.allow("enabled", "noBackupHours", "pvcUsagePercent", "ruleLabels", "webhookSecret")
    return AlertsConfig(
        enabled=r.flag("enabled", default=False),
        no_backup_hours=r.number("noBackupHours", default=26, minimum=1),
        pvc_usage_percent=r.number("pvcUsagePercent", default=80, minimum=1, maximum=100),
        rule_labels=check_labels(r, "ruleLabels"),
        webhook_secret=_secret_ref(r, "webhookSecret", required=False),
    )


def _check_cronjob_names(top: Reader, databases: tuple[DatabaseConfig, ...], drill: bool) -> None:
    """The CronJobs' names (the drill's only when there is one) within what Kubernetes allows;
    the key at fault is the release, or a further database's key that lengthens them."""
    for i, db in enumerate(databases):
        for cronjob in (db.cronjob_name, *([db.drill_cronjob_name] if drill else [])):
            if len(cronjob) > MAX_CRONJOB_NAME:
                top.fail(
                    f"databases[{i}].key" if i > 0 else "release",
                    f"the CronJob name {cronjob!r} would be {len(cronjob)} characters; "
                    f"Kubernetes allows {MAX_CRONJOB_NAME}",
                    "shorten pgbackup:release" + (" or this database's key" if i > 0 else ""),
                )


def parse_stack_config(raw: Mapping[str, Any], stack: str, region: str = "") -> StackConfig:
    """Validate the `pgbackup:` keys (without prefix) of one stack; raise ConfigError at the first
    problem, naming the key."""
    values = {**TOP_LEVEL_DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    top = Reader(values, f"{NAMESPACE}:", top=True)
    top.allow(*ALL_KEYS)
    for key in REQUIRED_KEYS:
        top.require(key)
    release = top.string("release", default="vocab-app")
    check_dns_label(top, "release", release, max_len=30)
    namespace = top.string("namespace")
    check_dns_label(top, "namespace", namespace, max_len=63)
    images = top.obj("images", None)
    images.allow("postgres", "awsCli")
    db_items = top.items("databases")
    if not db_items:
        top.fail("databases", "is empty", "list at least one database: [{name: ...}]")
    seen: set[str] = set()
    databases = tuple(
        _database(item, i, release, seen) for i, item in enumerate(top.obj_list("databases"))
    )
    apps = tuple(top.str_list("appDeployments"))
    for i, app in enumerate(apps):
        check_dns_label(top, f"appDeployments[{i}]", app, 253)
    drill = top.obj("drill", {})
    drill.allow("enabled", "schedule", "timeZone")
    _check_cronjob_names(top, databases, drill.flag("enabled", default=False))
    return StackConfig(
        stack=stack,
        region=region,
        namespace=namespace,
        release=release,
        postgres_image=check_image(images, "postgres", "postgres"),
        aws_cli_image=check_image(images, "awsCli", "amazon/aws-cli"),
        postgres=_postgres(top.obj("postgres", None)),
        databases=databases,
        app_deployments=apps,
        operator_group=top.string("operatorGroup", default=""),
        offsite=_offsite(top.obj("offsite", None), release),
        cross_stack_read=tuple(_cross_stack(c) for c in top.obj_list("crossStackRead")),
        drill=DrillConfig(
            enabled=drill.flag("enabled", default=False),
            schedule=check_cron(drill, "schedule", "0 4 1 * *"),
            time_zone=check_time_zone(drill, "timeZone", "Etc/UTC"),
        ),
        alerts=_alerts(top.obj("alerts", {})),
        kube_context=top.opt_string("kubeContext"),
        kubeconfig=values.get("kubeconfig"),
        backup_service_account=names.backup_service_account(release),
        restore_service_account=names.restore_service_account(release),
        restore_role=names.restore_role(release),
    )


# ---------------------------------------------------------------------------------------------
# Offline: from the stack files


def _project_defaults(project_dir: Path) -> dict[str, Any]:
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    defaults: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            defaults[key] = spec["default"]
    return defaults


def raw_stack_config(stack: str, project_dir: Path | str | None = None) -> dict[str, Any]:
    """Every `namespace:key` of the stack file with the project defaults, `secure:` values replaced
    by placeholders. Keys keep their namespace (`pgbackup:databases`, `aws:region`)."""
    root = Path(project_dir) if project_dir is not None else PROJECT_DIR
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise ConfigError(
            f"no stack file {path.name} in {root}",
            f"use one of the stacks: {', '.join(known) or '(none)'}",
            not_found=True,
        )
    data = yaml.safe_load(path.read_text()) or {}
    config: dict[str, Any] = {f"{NAMESPACE}:{k}": v for k, v in _project_defaults(root).items()}
    for key, value in (data.get("config") or {}).items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            value = SECRET_PLACEHOLDER.format(key=full)
        config[full] = value
    return config


def config_from_raw(raw: Mapping[str, Any], stack: str) -> StackConfig:
    prefix = f"{NAMESPACE}:"
    ours = {k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)}
    region = str(raw.get("aws:region") or "")
    return parse_stack_config(ours, stack, region)


def load_stack_config(stack_name: str, project_dir: Path | str | None = None) -> StackConfig:
    """The stack's validated config, read from `Pulumi.<stack>.yaml` (no Pulumi engine needed)."""
    return config_from_raw(raw_stack_config(stack_name, project_dir), stack_name)


# ---------------------------------------------------------------------------------------------
# Under Pulumi


def _decode(text: str) -> Any:
    """Pulumi hands every config value over as a string; objects, lists and booleans as JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def from_pulumi() -> StackConfig:
    """The stack's validated config from the running Pulumi program (real engine or mocks)."""
    import pulumi

    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for key in ALL_KEYS:
        if key in SECRET_KEYS:
            continue
        text = cfg.get(key)
        if text is not None:
            raw[key] = _decode(text)
    raw["kubeconfig"] = cfg.get_secret("kubeconfig")
    region = pulumi.Config("aws").get("region") or ""
    return parse_stack_config(raw, pulumi.get_stack(), region)
