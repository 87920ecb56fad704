#!/usr/bin/env bash
# backup.sh — dump PGDATABASE into a new backup set on the volume, verify it, write the manifest
# last, then apply retention. Runs in the postgres image (or locally with the client tools on
# PATH). Contract: jobs/scripts/README.md. Last stdout line: a one-line JSON summary.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
SCRIPT_DIR="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"
# shellcheck source=pg.sh
source "$SCRIPT_DIR/pg.sh"
# shellcheck source=backup_lib.sh
source "$SCRIPT_DIR/backup_lib.sh"
SUMMARY_EVENT=backup

RETENTION_DAYS="${RETENTION_DAYS:-30}"
KEEP_MIN="${KEEP_MIN:-7}"
COMPRESSION="${COMPRESSION:-auto}"
DUMP_JOBS="${DUMP_JOBS:-${CPU_LIMIT:-2}}"
# Where pg_dump compresses (gzip, or zstd from 16), exact row counts cost one extra scan of every
# table; above this much table data, use the planner's estimates instead (recorded as
# "row_counts": "estimate"). With zstd run by this script, rows are counted from the dump itself.
EXACT_ROW_COUNT_MAX_BYTES="${EXACT_ROW_COUNT_MAX_BYTES:-4294967296}"

DB="${PGDATABASE:-}"
require_folder_name PGDATABASE "$DB"
require_nonnegative_int RETENTION_DAYS "$RETENTION_DAYS"
require_nonnegative_int KEEP_MIN "$KEEP_MIN"
require_positive_int DUMP_JOBS "$DUMP_JOBS"
require_nonnegative_int EXACT_ROW_COUNT_MAX_BYTES "$EXACT_ROW_COUNT_MAX_BYTES"
(( KEEP_MIN >= 1 )) || die "$EX_CONFIG" "KEEP_MIN is 0: retention could delete every backup" \
  "set KEEP_MIN to at least 1 (default 7)"
require_tool pg_dump pg_dumpall pg_restore psql "$SHA256_TOOL" flock du df

STARTED_EPOCH="$(date -u +%s)"
STARTED_AT="$(utc_now)"
DB_DIR="$BACKUP_DIR/$DB"
COMPLETED=0

[[ -d "$BACKUP_DIR" ]] || die "$EX_CONFIG" "BACKUP_DIR $BACKUP_DIR does not exist" \
  "mount the backup volume there (or set BACKUP_DIR)"
setup_pgpass
init_private_tmp
lock_database_dir "$DB_DIR"

ID="$(new_backup_id "$DB_DIR")"
LOG_FILE="$BACKUP_DIR/backup_$ID.log"
PARTIAL="$DB_DIR/$ID.partial"
FINAL="$DB_DIR/$ID"
log "backup of database $DB on ${PGHOST:-local socket}:${PGPORT:-5432} as ${PGUSER:-$(id -un)}, set $ID"

# -- server, tools, options ----------------------------------------------------------------------
SERVER_INFO="$(pg_query "$DB" \
  "SELECT current_setting('server_version_num'), current_setting('server_version'),
          (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")"
IFS='|' read -r SERVER_VERSION_NUM SERVER_VERSION IS_SUPERUSER <<<"$SERVER_INFO"
SERVER_MAJOR=$((SERVER_VERSION_NUM / 10000))
PG_DUMP_VERSION="$(tool_version pg_dump)"
PG_DUMP_MAJOR="$(tool_major pg_dump)"
if ((PG_DUMP_MAJOR < SERVER_MAJOR)); then
  die "$EX_CONFIG" "pg_dump $PG_DUMP_VERSION is older than the server ($SERVER_VERSION)" \
    "run the backup in the postgres:$SERVER_MAJOR image (or newer)"
fi
resolve_compression "$PG_DUMP_MAJOR"
fall_back_to_gzip_if_no_room "$BACKUP_DIR"
log "server $SERVER_VERSION, pg_dump $PG_DUMP_VERSION, compression $COMPRESS_METHOD, $DUMP_JOBS jobs"
warn_if_volume_looks_small

mkdir -p "$PARTIAL" 2>/dev/null || die_write_failed "create $PARTIAL"
# shellcheck disable=SC2016  # expanded when the cleanup runs
add_cleanup '[[ "$COMPLETED" == 1 ]] || { rm -rf -- "$PARTIAL"; log "removed the incomplete set $PARTIAL"; }'
chmod 750 "$PARTIAL"

# -- database-level state, globals, dump ---------------------------------------------------------
DB_SETTINGS_JSON="$(pg_query "$DB" "$(database_settings_sql "$SERVER_VERSION_NUM")")"
dump_globals "$PARTIAL/globals.sql"
dump_database "$PARTIAL/dump"

# -- verify --------------------------------------------------------------------------------------
if ! pg_restore --list "$PARTIAL/dump" >"$PRIVATE_TMP/toc.list" 2>"$PRIVATE_TMP/list.err"; then
  fail_pg_step "pg_restore --list of the new dump" "$PRIVATE_TMP/list.err"
fi
ARCHIVE_VERSION="$(archive_version_of "$PRIVATE_TMP/toc.list")"
TOC_ENTRIES="$(toc_entry_count "$PRIVATE_TMP/toc.list")"
write_checksums "$PARTIAL"
check_sums "$PARTIAL" >&2 ||
  die "$EX_CORRUPT" "the new dump does not read back with the checksums just computed" \
    "check the backup volume for hardware or filesystem errors, then run the backup again"
log "verified: $TOC_ENTRIES archive entries (format $ARCHIVE_VERSION), checksums match"

# -- manifest last, then the rename that makes the set complete ----------------------------------
FINISHED_AT="$(utc_now)"
write_manifest "$PARTIAL"
mv -T -- "$PARTIAL" "$FINAL" || die_write_failed "rename $PARTIAL to $FINAL"
sync -- "$DB_DIR" 2>/dev/null || true
# shellcheck disable=SC2034  # read by the cleanup registered above
COMPLETED=1

TOTAL_BYTES="$(manifest_field "$FINAL/manifest.json" total_bytes)"
log "backup set $FINAL complete ($TOTAL_BYTES bytes)"

apply_retention

SECONDS_TAKEN=$(($(date -u +%s) - STARTED_EPOCH))
printf '{"event":"backup","database":%s,"id":"%s","bytes":%s,"seconds":%d,"status":"verified","path":%s,"compression":"%s","row_counts":"%s"}\n' \
  "$(json_string "$DB")" "$ID" "$TOTAL_BYTES" "$SECONDS_TAKEN" "$(json_string "$FINAL")" \
  "$COMPRESS_METHOD" "$ROW_COUNTS_MODE"
