#!/usr/bin/env bash
# restore.sh — restore a backup set (BACKUP_ID, default latest) of PGDATABASE side by side, check
# it against the manifest, then swap it in by rename, keeping the old database as
# <db>__pre_restore_<id>. RESTORE_STEP=prepare|swap|all; TARGET_DATABASE=<new> restores into a
# new database without swapping. Refuses before touching anything when the set is incomplete,
# a checksum differs, the server is unreachable or pg_restore is too old. Postgres image.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
SCRIPT_DIR="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"
# shellcheck source=pg.sh
source "$SCRIPT_DIR/pg.sh"
# shellcheck source=restore_lib.sh
source "$SCRIPT_DIR/restore_lib.sh"
SUMMARY_EVENT=restore

DB="${PGDATABASE:-}"
require_folder_name PGDATABASE "$DB"
# The set's folder is named after the database it was taken from; restoring another stack's
# backup (or into a differently named database) names it here. Another stack's sets are in that
# stack's folder (SOURCE_STACK, see sets_folder), where fetch.sh put them.
SOURCE_DATABASE="${SOURCE_DATABASE:-$DB}"
require_folder_name SOURCE_DATABASE "$SOURCE_DATABASE"
require_stack_name
BACKUP_ID="${BACKUP_ID:-latest}"
RESTORE_STEP="${RESTORE_STEP:-all}"
TARGET_DATABASE="${TARGET_DATABASE:-}"
DUMP_JOBS="${DUMP_JOBS:-${CPU_LIMIT:-2}}"
require_positive_int DUMP_JOBS "$DUMP_JOBS"
case "$RESTORE_STEP" in
  prepare | swap | all) ;;
  *) die "$EX_USAGE" "RESTORE_STEP '$RESTORE_STEP' is not prepare, swap or all" \
    "use prepare (restore beside the live database), swap (put a prepared one in place) or all" ;;
esac
if [[ -n "$TARGET_DATABASE" ]]; then
  require_folder_name TARGET_DATABASE "$TARGET_DATABASE"
  [[ "$RESTORE_STEP" == all ]] || die "$EX_USAGE" "TARGET_DATABASE restores without a swap" \
    "unset RESTORE_STEP (or set it to all) when TARGET_DATABASE is set"
  [[ "$TARGET_DATABASE" != "$DB" ]] || die "$EX_USAGE" "TARGET_DATABASE is the live database $DB" \
    "name a new database, or unset TARGET_DATABASE to restore $DB by side database and swap"
fi
# The session that renames the live database must be in another one.
[[ -n "${MAINTENANCE_DB:-}" || "$DB" != postgres ]] || MAINTENANCE_DB=template1
MAINTENANCE_DB="${MAINTENANCE_DB:-postgres}"
[[ "$MAINTENANCE_DB" != "$DB" || -n "$TARGET_DATABASE" ]] || die "$EX_USAGE" \
  "MAINTENANCE_DB is $DB, the database to restore" \
  "set MAINTENANCE_DB to another database of the server (e.g. postgres or template1)"
require_tool pg_restore psql "$SHA256_TOOL" gzip flock

STARTED_EPOCH="$(date -u +%s)"
DB_DIR="$(sets_folder "$SOURCE_DATABASE")"
setup_pgpass
init_private_tmp
lock_database_dir "$DB_DIR"
# Another database's (another stack's) set is read from its own folder: the live database's folder
# is locked too, so this restore and swap never overlap a backup of the live database.
if [[ "$DB_DIR" != "$BACKUP_DIR/$DB" ]]; then
  lock_database_dir "$BACKUP_DIR/$DB"
fi

# -- which set, and is it whole? (nothing touched yet) -------------------------------------------
resolve_backup
if [[ "$RESTORE_STEP" != swap ]]; then
  verify_source
fi
SIDE_DB="$(fitted_name "$DB" "__restore_${ID}")"
KEPT_DB="$(fitted_name "$DB" "__pre_restore_${ID}")"
[[ -z "$TARGET_DATABASE" ]] || require_name_fits "$TARGET_DATABASE"
RESTORE_INTO="${TARGET_DATABASE:-$SIDE_DB}"
log "restore of $DB from $SOURCE_KIND $ID ($SOURCE_PATH), step $RESTORE_STEP, into $RESTORE_INTO"

# -- server checks (still nothing touched) --------------------------------------------------------
SERVER_VERSION_NUM="$(pg_query "$MAINTENANCE_DB" "SELECT current_setting('server_version_num')")"
LIVE_EXISTS=f
if database_exists "$DB"; then LIVE_EXISTS=t; fi
refuse_if_not_restorable

# -- prepare: globals, side database, pg_restore, checks, database-level state -------------------
if [[ "$RESTORE_STEP" != swap ]]; then
  prepare_database "$RESTORE_INTO"
fi

STATUS=prepared
DOWNTIME_SECONDS=0
KEPT_NAME=""
if [[ -n "$TARGET_DATABASE" ]]; then
  STATUS=restored
elif [[ "$RESTORE_STEP" != prepare ]]; then
  swap_into_place
  STATUS=restored
fi

# A rehearsal's copy of another stack's set has served: it leaves this stack's volume (the original
# stays in that stack's bucket; fetch.sh clears what failed rehearsals leave).
if [[ "$STATUS" == restored && -n "${SOURCE_STACK:-}" && "$SOURCE_KIND" == set ]]; then
  if rm -rf -- "$SOURCE_PATH"; then
    log "removed $SOURCE_PATH, the copy of stack $SOURCE_STACK's set fetched for this restore"
  else
    warn "could not remove $SOURCE_PATH (a copy of stack $SOURCE_STACK's set); remove it by hand"
  fi
fi

SECONDS_TAKEN=$(($(date -u +%s) - STARTED_EPOCH))
log "restore of $DB from $ID $STATUS in ${SECONDS_TAKEN}s"
printf '{"event":"restore","database":%s,"id":%s,"step":"%s","status":"%s","into":%s,"side":%s,"kept":%s,"target":%s,"tables":%d,"row_counts":"%s","seconds":%d,"downtime_seconds":%d}\n' \
  "$(json_string "$DB")" "$(json_string "$ID")" "$RESTORE_STEP" "$STATUS" \
  "$(json_string "$RESTORE_INTO")" "$(json_string "$SIDE_DB")" \
  "$(if [[ -n "$KEPT_NAME" ]]; then json_string "$KEPT_NAME"; else echo null; fi)" \
  "$(if [[ -n "$TARGET_DATABASE" ]]; then json_string "$TARGET_DATABASE"; else echo null; fi)" \
  "${TABLES_CHECKED:-0}" "${ROW_COUNTS_MODE:-none}" "$SECONDS_TAKEN" "$DOWNTIME_SECONDS"
