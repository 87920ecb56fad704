"""`pgbackup demo` (what `make demo` runs): back up a database exactly as the CronJob would, lose
the whole server and its volume, rebuild from the offsite copy, and print the RTO and RPO.

Everything runs on 127.0.0.1: a throwaway PostgreSQL server and moto's S3 server. Nothing keeps
running afterwards; the only things kept are the files listed at the end (`build/demo/`, and the
rendered stacks when the renderer is there).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from jobs.dr.flow import run_steps
from jobs.dr.local_target import LocalRebuild
from jobs.dr.pod_locally import local_path_env, run_pod
from jobs.dr.sample_app import create_sample_database, row_counts
from jobs.dr.state import RebuildState
from jobs.dr.timeline import outcome, render
from jobs.local.postgres import LocalPostgres, find_bindir
from jobs.local.s3 import REGION, LocalS3
from jobs.ui import info, out, paint, table

DATABASE = "vocab_app_production"
BUCKET = "vocab-app-demo-postgres-backups"
PREFIX = "postgres"
# moto echoes SSE-KMS headers without checking the key; the cluster uses the stack's own key.
DEMO_KMS_KEY = f"arn:aws:kms:{REGION}:000000000000:key/demo"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="back up a sample database, lose the server, rebuild it from offsite, print the RTO",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--keep-dir",
        default="build/demo",
        help="where the timeline and the rebuild's state are kept (default: build/demo)",
    )
    parser.add_argument(
        "--no-render", action="store_true", help="skip rendering the stacks and the policy report"
    )
    parser.set_defaults(run=run)


def _cronjob_pod_spec(server: LocalPostgres, s3: LocalS3) -> dict[str, Any]:
    """The backup CronJob's pod, built by the same component `pulumi up` uses."""
    from infra.components.backup_cronjob import BackupCronJobArgs, OffsiteTarget, job_pod_spec
    from infra.config import Resources, SecretRef

    resources = Resources("100m", "256Mi", "2", "1Gi")
    args = BackupCronJobArgs(
        namespace="vocab-app-demo",
        cronjob_name="vocab-app-postgres-backup",
        database=DATABASE,
        schedule="0 2 * * *",
        time_zone="Etc/UTC",
        postgres_image="postgres:16",
        aws_cli_image="amazon/aws-cli:2",
        pvc_name="vocab-app-postgres-backup-pvc",
        configmap_name="vocab-app-postgres-backup-script",
        service_account_name="vocab-app-postgres-backup",
        pg_host="127.0.0.1",
        pg_port=server.port,
        pg_user="postgres",
        pg_ssl_mode="disable",
        password_secret=SecretRef("vocab-app-postgres", "postgres-password"),
        offsite=OffsiteTarget(
            bucket=BUCKET,
            prefix=PREFIX,
            region=REGION,
            kms_key_arn=DEMO_KMS_KEY,
            endpoint_url=s3.endpoint_url,
        ),
        resources=resources,
        upload_resources=resources,
    )
    return job_pod_spec(args)


def _image_env(bindir: Path) -> dict[str, str]:
    """What the official images give a step: the PostgreSQL client first, then the aws CLI
    (this environment's, so no other `aws` on PATH is picked up)."""
    image = local_path_env()
    image["PATH"] = os.pathsep.join(
        [str(bindir), str(Path(sys.executable).parent), image.get("PATH", "")]
    )
    return image


def _scheduled_backup(server: LocalPostgres, s3: LocalS3, work: Path) -> dict[str, Any]:
    """One run of the CronJob: its init container (backup.sh) then its container (upload.sh)."""
    from jobs.backends.steps import SCRIPTS_DIR

    password_dir = work / "secret-db-password"
    password_dir.mkdir()
    shutil.copy(server.password_file, password_dir / "password")
    volumes = {
        "backups": work / "pvc",
        "scripts": SCRIPTS_DIR,
        "db-password": password_dir,
        "tmp": work / "tmp",
        "aws-home": work / "aws-home",
    }
    image = _image_env(server.bindir)
    # In the cluster the credentials come from IRSA; here the standard variables stand in.
    credentials = {k: v for k, v in s3.env().items() if k.startswith("AWS_")}
    summaries = run_pod(
        _cronjob_pod_spec(server, s3), volumes, {**image, **credentials}, {"CPU_LIMIT": "2"}
    )
    return summaries[0]


def _render_and_policy(root: Path) -> list[str]:
    """Both stacks rendered and their policy report, once the renderer and the pack exist."""
    from jobs.cli import main as cli

    kept = []
    if importlib.util.find_spec("jobs.commands.render") is not None:
        for stack in ("staging", "production"):
            target = root / "build" / "render" / stack
            info(paint(f"==> render stack {stack} into {target}", "bold"))
            if cli(["--stack", stack, "render", "--out", str(target)]) == 0:
                kept.append(str(target))
    else:
        info("(stack rendering is not available in this checkout yet: skipped)")
    if importlib.util.find_spec("jobs.commands.policy") is not None:
        for stack in ("staging", "production"):
            info(paint(f"==> policy report of stack {stack}", "bold"))
            report = io.StringIO()
            with contextlib.redirect_stdout(report):
                cli(["--stack", stack, "policy"])
            # The summary line only; `pgbackup --stack <s> policy` prints the whole table.
            for line in report.getvalue().splitlines():
                if line.startswith(f"stack {stack}:"):
                    out(line)
    else:
        info("(the policy pack is not available in this checkout yet: skipped)")
    return kept


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    # A SIGTERM (CI timeout, `kill`) still runs the clean-up below: nothing is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    keep_dir = Path(args.keep_dir).resolve()
    work = Path(tempfile.mkdtemp(prefix="pgbackup-demo-"))
    server: LocalPostgres | None = None
    rebuild: LocalRebuild | None = None
    s3 = LocalS3()
    try:
        info(paint("==> 1/5 start a throwaway PostgreSQL and S3 (moto) on 127.0.0.1", "bold"))
        # moto's start-up and initdb each take seconds: overlap them.
        s3_thread = threading.Thread(target=s3.start)
        s3_thread.start()
        server = LocalPostgres().init()
        server.start()
        s3_thread.join()
        s3.create_bucket(BUCKET)
        info(
            f"    PostgreSQL {server.psql('SHOW server_version')} on 127.0.0.1:{server.port}, "
            f"S3 on {s3.endpoint_url}, bucket {BUCKET}"
        )

        info(paint(f"==> 2/5 load the vocabulary app's sample data into {DATABASE}", "bold"))
        before = create_sample_database(server, DATABASE)
        info("    " + ", ".join(f"{t} {n}" for t, n in before.items()))

        info(paint("==> 3/5 the scheduled backup, run as the CronJob's pod would run it", "bold"))
        backup = _scheduled_backup(server, s3, work)
        info(f"    set {backup.get('id')} ({backup.get('bytes')} bytes) verified and offsite")

        info(
            paint("==> 4/5 the cluster is lost: server, data directory and volume deleted", "bold")
        )
        server.destroy()
        server = None
        shutil.rmtree(work / "pvc")
        incident = time.time()

        info(paint("==> 5/5 dr-rebuild onto a new server from the offsite copy", "bold"))
        keep_dir.mkdir(parents=True, exist_ok=True)
        state_file = keep_dir / "dr-demo.json"
        state_file.unlink(missing_ok=True)
        state = RebuildState.load_or_new(state_file, "demo", incident)
        rebuild = LocalRebuild(
            database=DATABASE,
            backup_dir=work / "new-pvc",
            bucket=BUCKET,
            prefix=PREFIX,
            s3_env=s3.env(),  # moto does not check keys: the reader's stand in for read-only ones
            base_env=_image_env(find_bindir()),
        )
        run_steps(rebuild.steps(), state)
        assert rebuild.server is not None
        after = row_counts(rebuild.server, DATABASE)
        rows = [[t, str(before[t]), str(after[t])] for t in before]
        out(table(["table", "before the loss", "after the rebuild"], rows))
        out()
        report = render(
            state,
            "locally there is no DNS; in a cluster: point the app's hostname "
            "at the new cluster's ingress",
        )
        out(report)
        (keep_dir / "timeline.txt").write_text(report + "\n", encoding="utf-8")
        if after != before:
            info(paint("the rebuilt database differs from the lost one", "red"))
            return 1
        kept = [str(keep_dir / "timeline.txt"), str(state_file)]
        if not args.no_render:
            kept += _render_and_policy(Path.cwd())
        result = outcome(state)
        out()
        out(
            f"Demo finished in {time.monotonic() - started:.0f} s "
            f"(RTO {result.rto_seconds:.0f} s). "
            "Nothing is left running."
        )
        out("Kept: " + ", ".join(kept))
        return 0
    finally:
        if rebuild is not None:
            rebuild.close()
        if server is not None:
            server.destroy()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
