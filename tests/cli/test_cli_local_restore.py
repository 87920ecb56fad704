"""The local backend end to end: backup, list, verify, restore with swap, restore --to, refusals.

Real PostgreSQL, real pg_dump/pg_restore, the real scripts, moto's S3 on 127.0.0.1, all driven
through `jobs.cli.main` as an operator would type it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from clihelp import Local

from jobs.backends import steps
from jobs.backends.base import StatusReport
from jobs.commands.status import other_folder_notes
from jobs.errors import ExitCode


def backup(local: Local) -> str:
    """A backup through the CLI; returns its id (read from the summary's restore command)."""
    assert local.run("backup") == 0
    out, _ = local.output()
    assert "=== Backup Summary ===" in out
    line = next(line for line in out.splitlines() if line.startswith("Backup id:"))
    return line.split(":", 1)[1].strip()


def test_backup_prints_summary_with_restore_command(local: Local) -> None:
    assert local.run("backup") == 0
    out, _ = local.output()
    assert "=== Backup Summary ===" in out
    assert "Status:     verified" in out
    backup_id = next(x for x in out.split() if x.endswith("z") and x[:8].isdigit())
    assert f"restore {backup_id} --database {local.db}" in out
    manifest = local.backup_dir / local.db / backup_id / "manifest.json"
    assert json.loads(manifest.read_text())["status"] == "verified"


def test_list_shows_the_set_on_volume_and_offsite(local: Local) -> None:
    local.with_offsite()
    backup_id = backup(local)
    assert local.run("list") == 0
    out, _ = local.output()
    rows = [line.split() for line in out.splitlines() if line.startswith(backup_id)]
    assert {row[-1] for row in rows} == {"volume", "offsite"}
    assert all(row[1] == local.db and "yes" in row for row in rows)
    assert local.run("status") == 0
    out, _ = local.output()
    assert f"Newest (volume):  {backup_id}" in out
    assert f"Newest (offsite): {backup_id}" in out
    assert "Volume usage:" in out and "unknown" not in out
    assert "not offsite yet" not in out

    # A set the uploads never sent (the bucket was down that night) is named.
    shutil.copytree(
        local.backup_dir / local.db / backup_id, local.backup_dir / local.db / "20200101t020000z"
    )
    assert local.run("status") == 0
    out, _ = local.output()
    assert "1 verified set(s) on the volume not offsite yet (oldest 20200101t020000z)" in out


def test_status_names_what_else_holds_sets_on_the_volume(local: Local) -> None:
    backup_id = backup(local)
    own = local.backup_dir / local.db / backup_id
    # A rehearsal's copy of production's set, and sets an older pgbackup filed in a folder of
    # their own (another stack's database name), with a partial one.
    shutil.copytree(own, local.backup_dir / ".stacks" / "production" / local.db / backup_id)
    shutil.copytree(own, local.backup_dir / "billing_production" / backup_id)
    (local.backup_dir / "billing_production" / f"{backup_id}-2.partial").mkdir()

    assert local.run("status") == 0
    out, _ = local.output()

    also = [line for line in out.splitlines() if line.startswith("Also on volume:")]
    assert len(also) == 1  # without a stack, another folder may be one of the user's databases
    assert f".stacks/production/{local.db}: 1 set(s)" in also[0]
    assert "copies of stack production's sets fetched for a rehearsal" in also[0]


def test_status_names_a_folder_of_sets_only_where_none_is_expected() -> None:
    folders = [(".stacks/production/app", 1, 10), ("billing", 2, 10), ("app_old", 1, 10)]
    assert steps.unexpected_folders(folders, expected=None) == (folders[0],)
    assert steps.unexpected_folders(folders, expected=["app", "billing"]) == (
        folders[0],
        folders[2],
    )
    report = StatusReport(
        "app", "", None, "", "", None, None, None, None,
        other_folders=steps.unexpected_folders(folders, expected=()),
    )  # fmt: skip
    notes = other_folder_notes(report)
    assert [n.split(":")[0] for n in notes] == [".stacks/production/app", "billing", "app_old"]
    assert "remove them if none is planned" in notes[0]
    assert notes[1].startswith("billing: 2 set(s), 10 B, of a database this volume does not")


def test_verify_on_the_volume_and_offsite(local: Local) -> None:
    local.with_offsite()
    backup_id = backup(local)
    assert local.run("verify", "latest") == 0
    assert f"{local.db}/{backup_id} verified (volume" in local.output()[0]
    assert local.run("verify", backup_id, "--from", "offsite") == 0
    assert "verified (offsite" in local.output()[0]


def test_restore_swaps_in_the_backup_and_keeps_the_old_database(local: Local) -> None:
    backup_id = backup(local)
    local.sql("DELETE FROM words WHERE id > 10; INSERT INTO words VALUES (1000, 'after')")

    code = local.run("restore", backup_id, "--skip-fresh-backup", typed=local.db)

    out, err = local.output()
    assert code == 0, err
    assert local.sql("SELECT count(*), max(id) FROM words") == "50|50"
    kept = f"{local.db}__pre_restore_{backup_id}"
    assert local.sql("SELECT count(*), max(id) FROM words", kept) == "11|1000"
    assert f"kept as {kept}" in out
    assert "Post-restore checks:" in out
    assert local.databases() == sorted([local.db, kept])


def test_step_variables_left_in_the_shell_do_not_redirect_a_restore(local: Local) -> None:
    backup_id = backup(local)
    local.sql("DELETE FROM words WHERE id > 10")
    # As left exported after running fetch.sh and restore.sh by hand.
    for name, value in {
        "SOURCE_STACK": "production",
        "SOURCE_DATABASE": "billing",
        "TARGET_DATABASE": "elsewhere",
        "RESTORE_STEP": "prepare",
        "SKIP_RETENTION": "1",
    }.items():
        local.monkeypatch.setenv(name, value)

    code = local.run("restore", backup_id, "--skip-fresh-backup", typed=local.db)

    assert code == 0, local.output()[1]
    assert local.sql("SELECT count(*) FROM words") == "50"
    assert local.databases() == sorted([local.db, f"{local.db}__pre_restore_{backup_id}"])


def test_restore_takes_a_fresh_backup_first(local: Local) -> None:
    backup_id = backup(local)
    local.sql("INSERT INTO words VALUES (1000, 'after')")

    assert local.run("restore", "latest", "--yes") == 0

    out, _ = local.output()
    fresh = next(line for line in out.splitlines() if line.startswith("Fresh backup:"))
    fresh_id = fresh.split(":", 1)[1].split()[0]
    assert fresh_id != backup_id
    assert local.sql("SELECT count(*) FROM words") == "50"
    # The fresh backup holds the data from just before the restore.
    assert local.run("restore", fresh_id, "--to", f"{local.db}_before", "--yes") == 0
    assert local.sql("SELECT count(*) FROM words", f"{local.db}_before") == "51"


def test_restore_to_a_new_database_leaves_the_live_one_alone(local: Local) -> None:
    backup_id = backup(local)
    local.sql("INSERT INTO words VALUES (1000, 'after')")

    assert (
        local.run("restore", backup_id, "--to", f"{local.db}_copy", typed=f"{local.db}_copy") == 0
    )

    assert local.sql("SELECT count(*) FROM words", f"{local.db}_copy") == "50"
    assert local.sql("SELECT count(*) FROM words") == "51"
    assert local.databases() == sorted([local.db, f"{local.db}_copy"])


def test_restore_from_offsite_fetches_the_set_first(local: Local) -> None:
    local.with_offsite()
    backup_id = backup(local)
    for path in sorted((local.backup_dir / local.db).glob("*"), reverse=True):
        _remove(path)
    local.sql("INSERT INTO words VALUES (1000, 'after')")

    assert local.run("restore", "latest", "--from", "offsite", "--skip-fresh-backup", "--yes") == 0

    assert local.sql("SELECT count(*) FROM words") == "50"
    assert (local.backup_dir / local.db / backup_id / "manifest.json").exists()


def test_wrong_database_name_typed_changes_nothing(local: Local) -> None:
    backup(local)
    local.sql("INSERT INTO words VALUES (1000, 'after')")

    code = local.run("restore", "latest", "--skip-fresh-backup", typed="production")

    _, err = local.output()
    assert code == ExitCode.ABORTED
    assert "confirmation did not match" in err
    assert local.sql("SELECT count(*) FROM words") == "51"
    assert local.databases() == [local.db]


def test_no_terminal_and_no_yes_is_refused(local: Local) -> None:
    backup(local)
    code = local.run("restore", "latest")
    _, err = local.output()
    assert code == ExitCode.ABORTED
    assert "stdin is not a terminal" in err and "--yes" in err
    assert local.databases() == [local.db]


def test_dry_run_prints_the_plan_and_changes_nothing(local: Local) -> None:
    backup_id = backup(local)
    sets_before = sorted(p.name for p in (local.backup_dir / local.db).iterdir())
    local.sql("INSERT INTO words VALUES (1000, 'after')")

    code = local.run("restore", "latest", "--dry-run")

    out, _ = local.output()
    assert code == 0
    assert "=== Restore plan ===" in out
    assert f"{local.db}__restore_{backup_id}" in out
    assert "take a fresh backup" in out
    assert "Dry run: nothing was changed." in out
    assert local.sql("SELECT count(*) FROM words") == "51"
    assert local.databases() == [local.db]
    assert sorted(p.name for p in (local.backup_dir / local.db).iterdir()) == sets_before


def test_corrupted_set_is_refused_before_anything_is_touched(local: Local) -> None:
    backup_id = backup(local)
    dump = local.backup_dir / local.db / backup_id / "dump"
    victim = max((p for p in dump.iterdir() if p.name != "toc.dat"), key=lambda p: p.stat().st_size)
    victim.write_bytes(b"not what was dumped")
    local.sql("INSERT INTO words VALUES (1000, 'after')")

    code = local.run("restore", backup_id, "--skip-fresh-backup", "--yes")

    _, err = local.output()
    assert code == ExitCode.CORRUPT, err
    assert "— fetch this set again from offsite" in err.splitlines()[-1]
    assert local.sql("SELECT count(*) FROM words") == "51"
    assert local.databases() == [local.db]
    assert local.run("verify", backup_id) == ExitCode.CORRUPT


def test_unknown_id_is_not_found(local: Local) -> None:
    backup(local)
    code = local.run("restore", "20200101t000000z", "--yes")
    _, err = local.output()
    assert code == ExitCode.NOT_FOUND
    assert "20200101t000000z" in err and "pgbackup list" in err


def test_restore_latest_without_any_backup_is_not_found(local: Local) -> None:
    assert local.run("restore", "latest", "--yes") == ExitCode.NOT_FOUND
    assert "run `pgbackup backup` first" in local.output()[1]


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path) if path.is_dir() else path.unlink()
