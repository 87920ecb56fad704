#!/usr/bin/env bash
# shellcheck shell=bash
# The steps of restore.sh, one function each. Sourced by restore.sh after common.sh and pg.sh;
# they read and set restore.sh's globals (DB, ID, SIDE_DB, KEPT_DB, MANIFEST, ...).
# shellcheck source-path=SCRIPTDIR
# shellcheck source=restore_sql.sh
source "$(dirname "${BASH_SOURCE[0]}")/restore_sql.sh"
# shellcheck source=globals.sh
source "$(dirname "${BASH_SOURCE[0]}")/globals.sh"
# shellcheck source=compress.sh
source "$(dirname "${BASH_SOURCE[0]}")/compress.sh"
# shellcheck source=load_dump.sh
source "$(dirname "${BASH_SOURCE[0]}")/load_dump.sh"

PREPARED_MARK="pgbackup: prepared from backup"

# resolve_backup: BACKUP_ID (an id, latest, or a legacy .sql.gz file name) -> ID, SOURCE_KIND
# (set|legacy), SOURCE_PATH and MANIFEST.
resolve_backup() {
  MANIFEST=""
  if [[ "$BACKUP_ID" == latest ]]; then
    ID="$(latest_verified_id "$DB_DIR")" ||
      die "$EX_NOT_FOUND" "no verified backup of $SOURCE_DATABASE in $DB_DIR" \
        "run a backup first, or fetch one from offsite (fetch.sh / pgbackup download)"
  elif [[ "$BACKUP_ID" == *.sql.gz ]]; then
    [[ "$BACKUP_ID" != */* ]] || die "$EX_USAGE" "BACKUP_ID must be a file name, not a path" \
      "give the legacy dump's name as it appears in $BACKUP_DIR"
    SOURCE_KIND=legacy
    if [[ -f "$BACKUP_DIR/$BACKUP_ID" ]]; then
      SOURCE_PATH="$BACKUP_DIR/$BACKUP_ID"
    elif [[ -f "$DB_DIR/$BACKUP_ID" ]]; then
      SOURCE_PATH="$DB_DIR/$BACKUP_ID"
    else
      die "$EX_NOT_FOUND" "legacy dump $BACKUP_ID not found in $BACKUP_DIR" \
        "list the volume (inventory.sh / pgbackup list) and give an existing file name"
    fi
    # The id of a legacy dump comes from the time in its name (..._20260119_020000.sql.gz).
    if [[ "$BACKUP_ID" =~ ([0-9]{8})_([0-9]{6})\.sql\.gz$ ]]; then
      ID="${BASH_REMATCH[1]}t${BASH_REMATCH[2]}z"
    else
      ID="legacy$(date -u +%Y%m%dt%H%M%Sz)"
    fi
    return 0
  else
    is_backup_id "$BACKUP_ID" || die "$EX_USAGE" "BACKUP_ID '$BACKUP_ID' is not a backup id" \
      "use an id such as 20260119t020000z, latest, or a legacy postgres_*.sql.gz file name"
    ID="$BACKUP_ID"
  fi
  SOURCE_KIND="set"
  SOURCE_PATH="$DB_DIR/$ID"
  MANIFEST="$SOURCE_PATH/manifest.json"
  if [[ ! -d "$SOURCE_PATH" ]]; then
    [[ ! -d "$SOURCE_PATH.partial" ]] || die "$EX_CORRUPT" "backup $ID is incomplete (still .partial)" \
      "choose a complete set (BACKUP_ID=latest) or fetch it again"
    die "$EX_NOT_FOUND" "backup $ID not found in $DB_DIR" \
      "list the sets (inventory.sh / pgbackup list) or fetch it from offsite first"
  fi
}

# verify_source: the set is whole before anything is touched: manifest present and verified,
# every checksum matches, this pg_restore reads the archive (its list is kept in
# $PRIVATE_TMP/toc.list, for load_dump). Legacy dumps: gzip -t.
verify_source() {
  if [[ "$SOURCE_KIND" == legacy ]]; then
    gzip -t -- "$SOURCE_PATH" 2>/dev/null || die "$EX_CORRUPT" \
      "legacy dump $BACKUP_ID fails gzip's integrity test (truncated or corrupted)" \
      "choose another dump; the live database was not touched"
    if (($(gzip -cd -- "$SOURCE_PATH" | grep -cE '^(\\connect|CREATE DATABASE) ' || true) > 0)); then
      die "$EX_USAGE" "legacy dump $BACKUP_ID creates and connects to its own database" \
        "restore it by hand with psql; only plain dumps without --create are restored side by side"
    fi
    log "legacy dump $BACKUP_ID passes gzip -t"
    return 0
  fi
  [[ -f "$MANIFEST" ]] || die "$EX_CORRUPT" "backup $ID has no manifest.json: it is incomplete" \
    "choose a complete set (BACKUP_ID=latest); incomplete sets are never restored"
  [[ "$(manifest_field "$MANIFEST" status || true)" == verified ]] || die "$EX_CORRUPT" \
    "backup $ID is not marked verified in its manifest" "choose a verified set (BACKUP_ID=latest)"
  [[ -f "$SOURCE_PATH/SHA256SUMS" ]] || die "$EX_CORRUPT" "backup $ID has no SHA256SUMS" \
    "choose another set or fetch this one again from offsite"
  if ! check_manifest_files "$SOURCE_PATH" >"$PRIVATE_TMP/sums.out" 2>&1 ||
    ! check_sums "$SOURCE_PATH" >"$PRIVATE_TMP/sums.out" 2>&1; then
    die "$EX_CORRUPT" "backup $ID fails its checksums ($(head -n1 "$PRIVATE_TMP/sums.out"))" \
      "fetch this set again from offsite or choose another one; the live database was not touched"
  fi
  local listed wanted
  if ! pg_restore --list "$SOURCE_PATH/dump" >"$PRIVATE_TMP/toc.list" 2>"$PRIVATE_TMP/list.err"; then
    if grep -q 'unsupported version' "$PRIVATE_TMP/list.err"; then
      die "$EX_CONFIG" "pg_restore $(tool_version pg_restore) is older than the archive (pg_dump $(manifest_field "$MANIFEST" pg_dump_version))" \
        "run the restore in a postgres image at least as new as the backup's pg_dump"
    fi
    fail_pg_step "pg_restore --list of backup $ID" "$PRIVATE_TMP/list.err"
  fi
  listed="$(archive_version_of "$PRIVATE_TMP/toc.list")"
  wanted="$(manifest_field "$MANIFEST" archive_version || true)"
  [[ -z "$wanted" || "$listed" == "$wanted" ]] || die "$EX_CORRUPT" \
    "backup $ID's archive is version $listed, its manifest says $wanted" "choose another set"
  require_zstd_reader "$MANIFEST"
  log "backup $ID verified: checksums match, archive $listed readable by pg_restore $(tool_version pg_restore)"
}

# fitted_name BASE SUFFIX: BASE SUFFIX, or when that exceeds PostgreSQL's 63 bytes, BASE cut short
# (never inside a character) with `_` and 8 hex of BASE's md5, then SUFFIX: a database of any
# name gets its side and kept databases. (jobs/backends/steps.py fitted_name says the same.)
fitted_name() {
  local LC_ALL=C base="$1" suffix="$2" cut hash
  if ((${#base} + ${#suffix} <= 63)); then
    printf '%s%s\n' "$base" "$suffix"
    return 0
  fi
  hash="$(name_hash "$base")"
  cut="${base:0:$((63 - ${#suffix} - 9))}"
  while [[ -n "$cut" && "${cut: -1}" != [\ -~] ]]; do cut="${cut:0:-1}"; done
  printf '%s_%s%s\n' "$cut" "$hash" "$suffix"
}

# name_hash NAME: the 8 hex of NAME's md5 that a fitted name carries.
name_hash() {
  local sum
  sum="$(printf '%s' "$1" | md5sum)"
  printf '%s\n' "${sum:0:8}"
}

# require_name_fits NAME: PostgreSQL truncates names at 63 bytes; a truncated name would collide.
require_name_fits() {
  local LC_ALL=C
  ((${#1} <= 63)) || die "$EX_USAGE" "database name '$1' is longer than 63 bytes" \
    "use a shorter database name or TARGET_DATABASE"
}

# database_exists NAME: whether the database exists. A failed query ends the script (exit, not
# return: callers test this in conditions, where set -e does not apply).
database_exists() {
  local answer
  answer="$(pg_query "$MAINTENANCE_DB" "SELECT count(*) > 0 FROM pg_database WHERE datname = $(sql_literal "$1")")" ||
    exit "$?"
  [[ "$answer" == t ]]
}

# refuse_if_not_restorable: every refusal that can be known before touching anything.
refuse_if_not_restorable() {
  if [[ -n "$TARGET_DATABASE" ]] && database_exists "$TARGET_DATABASE"; then
    die "$EX_USAGE" "TARGET_DATABASE $TARGET_DATABASE already exists" \
      "name a database that does not exist yet (the restore never overwrites one)"
  fi
  if [[ -z "$TARGET_DATABASE" && "$LIVE_EXISTS" == t ]] && database_exists "$KEPT_DB"; then
    die "$EX_USAGE" "$KEPT_DB exists already (an earlier restore of this set kept it)" \
      "drop or rename $KEPT_DB once you no longer need it, then run the restore again"
  fi
  if [[ "$RESTORE_STEP" == swap ]]; then
    database_exists "$SIDE_DB" || die "$EX_NOT_FOUND" \
      "no prepared database $SIDE_DB to swap in" "run the restore with RESTORE_STEP=prepare first"
    local comment
    comment="$(database_comment "$SIDE_DB")"
    [[ "$comment" == "$PREPARED_MARK $ID" ]] || die "$EX_CORRUPT" \
      "$SIDE_DB exists but its preparation did not finish" \
      "run RESTORE_STEP=prepare again (it replaces the unfinished side database)"
  fi
  if [[ "$LIVE_EXISTS" == t && -z "$TARGET_DATABASE" && "$RESTORE_STEP" != swap ]]; then
    log "side by side: $SIDE_DB needs about as much room as $DB ($(pg_query "$MAINTENANCE_DB" \
      "SELECT pg_size_pretty(pg_database_size($(sql_literal "$DB")))")); the server cannot report its free space, so the restore goes on"
    warn_about_kept_copies
  fi
}

# warn_about_kept_copies: the copies earlier restores kept (never dropped for the user) take room
# on the same server; name them before this restore needs room for one more database.
warn_about_kept_copies() {
  # Named <db>__pre_restore_<id>, or, fitted for a long name, ..._<its hash>__pre_restore_<id>.
  local plain="${DB}__pre_restore_" fitted kept
  fitted="_$(name_hash "$DB")__pre_restore_"
  kept="$(pg_query "$MAINTENANCE_DB" "SELECT string_agg(format('%s (%s)', datname,
      pg_size_pretty(pg_database_size(oid))), ', ' ORDER BY datname)
    FROM pg_database WHERE left(datname, length($(sql_literal "$plain"))) = $(sql_literal "$plain")
      OR strpos(datname, $(sql_literal "$fitted")) > 0")"
  [[ -z "$kept" ]] || warn "earlier restores kept $kept on this server:" \
    "drop those you no longer need (DROP DATABASE <name>) to free room"
}

# database_comment NAME: the comment on a database ('' when none).
database_comment() {
  pg_query "$MAINTENANCE_DB" "SELECT coalesce(shobj_description(oid, 'pg_database'), '')
    FROM pg_database WHERE datname = $(sql_literal "$1")"
}

# settings_json: the database-level state to give the restored database: the manifest's, or for
# a legacy dump the live database's (or none when it does not exist).
settings_json() {
  if [[ -n "$MANIFEST" ]]; then
    manifest_raw "$MANIFEST" database_settings
  elif [[ "$LIVE_EXISTS" == t ]]; then
    pg_query "$MAINTENANCE_DB" "$(database_settings_sql "$SERVER_VERSION_NUM" "$DB")"
  else
    echo '{}'
  fi
}

# drop_database NAME: used only on databases this script created.
drop_database() {
  "${PSQL[@]}" -d "$(conninfo_db "$MAINTENANCE_DB")" \
    -c "DROP DATABASE IF EXISTS $(sql_ident "$1") WITH (FORCE)" 2>/dev/null
}

# prepare_database INTO: globals, a fresh database with the recorded owner/encoding/locale,
# pg_restore -j, checks against the manifest, database-level settings. On any failure the new
# database is dropped again; the live one is never touched here.
prepare_database() {
  local into="$1" settings rc=0
  settings="$(settings_json)"
  if [[ "$SOURCE_KIND" == set ]]; then
    apply_globals "$SOURCE_PATH/globals.sql"
  fi
  if [[ "$into" == "$SIDE_DB" ]] && database_exists "$SIDE_DB"; then
    log "dropping $SIDE_DB left by an earlier, unfinished restore"
    drop_database "$SIDE_DB" || die "$EX_STEP_FAILED" "could not drop the leftover $SIDE_DB" \
      "drop it by hand (DROP DATABASE \"$SIDE_DB\" WITH (FORCE)) and run again"
  fi
  # shellcheck disable=SC2016  # expanded when the cleanup runs
  add_cleanup '[[ -z "${DROP_ON_FAILURE:-}" ]] || { drop_database "$DROP_ON_FAILURE"; log "dropped the unfinished $DROP_ON_FAILURE"; }'
  create_database_sql "$into" "$settings" >"$PRIVATE_TMP/create.sql"
  run_generated "CREATE DATABASE $into" "$PRIVATE_TMP/create.sql"
  # Only once it is ours: had someone else created that name meanwhile, the CREATE fails, and
  # their database must not be dropped by the cleanup.
  DROP_ON_FAILURE="$into"
  log "created $into; loading the dump"

  if [[ "$SOURCE_KIND" == set ]]; then
    load_dump "$SOURCE_PATH/dump" "$into"
  else
    run_child load_legacy_dump "$into" 2>"$PRIVATE_TMP/restore.err" || rc=$?
    ((rc == 0)) || fail_pg_step "loading $BACKUP_ID into $into (exit $rc)" "$PRIVATE_TMP/restore.err"
  fi
  check_restored "$into"

  database_state_sql "$into" "$settings" >"$PRIVATE_TMP/state.sql"
  if [[ "$into" == "$SIDE_DB" ]]; then
    # The mark swap looks for; the swap's transaction replaces it with the recorded comment.
    printf 'COMMENT ON DATABASE %s IS %s;\n' "$(sql_ident "$into")" "$(sql_literal "$PREPARED_MARK $ID")" \
      >>"$PRIVATE_TMP/state.sql"
  else
    database_comment_sql "$into" "$settings" >>"$PRIVATE_TMP/state.sql"
  fi
  run_generated "the database-level settings of $into" "$PRIVATE_TMP/state.sql" --single-transaction
  # shellcheck disable=SC2034  # read by the cleanup registered above
  DROP_ON_FAILURE=""
  log "$into is ready: $TABLES_CHECKED tables match the manifest (row counts: $ROW_COUNTS_MODE)"
}

# load_legacy_dump INTO: a legacy plain .sql.gz through psql, in one transaction.
load_legacy_dump() {
  gzip -cd -- "$SOURCE_PATH" |
    "${PSQL[@]}" --single-transaction -d "$(conninfo_db "$1")" -f - >/dev/null
}

# check_restored INTO: the restored tables (and, when the manifest's counts are exact, their
# row counts) against the manifest. Sets TABLES_CHECKED and ROW_COUNTS_MODE.
check_restored() {
  local into="$1" result mismatches
  if [[ -z "$MANIFEST" ]]; then
    ROW_COUNTS_MODE=none
    TABLES_CHECKED="$(pg_query "$into" "SELECT count(*) FROM jsonb_array_elements(($(tables_sql estimate))::jsonb)")"
    return 0
  fi
  ROW_COUNTS_MODE="$(manifest_field "$MANIFEST" row_counts || echo estimate)"
  check_tables_sql "$(manifest_raw "$MANIFEST" tables)" "$ROW_COUNTS_MODE" "${LOADED_ROWS:-}" \
    >"$PRIVATE_TMP/check.sql"
  result="$("${PSQL[@]}" -d "$(conninfo_db "$into")" -f "$PRIVATE_TMP/check.sql" 2>"$PRIVATE_TMP/check.err")" ||
    fail_pg_step "checking $into against the manifest" "$PRIVATE_TMP/check.err"
  TABLES_CHECKED="$(head -n1 <<<"$result")"
  mismatches="$(tail -n +2 <<<"$result")"
  if [[ -n "$mismatches" ]]; then
    while IFS= read -r line; do log "  differs: $line"; done <<<"$mismatches"
    die "$EX_CORRUPT" "the restored database does not match backup $ID's manifest ($(head -n1 <<<"$mismatches"))" \
      "choose another set; the live database was not touched"
  fi
}

# run_generated STEP FILE [PSQL_OPTION...]: FILE (from one of restore_sql.sh's generators: a
# query, then \gexec running each statement it prints) in one session on MAINTENANCE_DB; dies
# naming STEP when any of it fails.
run_generated() {
  local step="$1" file="$2"
  shift 2
  "${PSQL[@]}" "$@" -d "$(conninfo_db "$MAINTENANCE_DB")" -f "$file" \
    >/dev/null 2>"$PRIVATE_TMP/generated.err" || fail_pg_step "$step" "$PRIVATE_TMP/generated.err"
}

# swap_into_place: refuse new connections to the live database, then in one transaction end its
# sessions, rename it to KEPT_DB and the side database to its name. On failure before the commit
# the live database is left as it was, connections allowed again.
swap_into_place() {
  local started
  started="$(date -u +%s)"
  [[ "$LIVE_EXISTS" != t ]] || KEPT_NAME="$KEPT_DB"
  # One transaction: the renames and the comment the source database had (the side database
  # carries the prepared mark until then), so the swap is all done or not at all.
  {
    swap_sql "$DB" "$SIDE_DB" "${KEPT_NAME:-}" "$SERVER_VERSION_NUM"
    database_comment_sql "$DB" "$(settings_json)"
  } >"$PRIVATE_TMP/swap.sql"
  if [[ "$LIVE_EXISTS" == t ]]; then
    # Armed before the ALTER: a SIGTERM the moment it commits must still let connections back
    # in (allowing them where they were never refused does no harm).
    REALLOW_ON_FAILURE="$DB"
    # shellcheck disable=SC2016  # expanded when the cleanup runs
    add_cleanup '[[ -z "${REALLOW_ON_FAILURE:-}" ]] || "${PSQL[@]}" -d "$(conninfo_db "$MAINTENANCE_DB")" -c "ALTER DATABASE $(sql_ident "$REALLOW_ON_FAILURE") WITH ALLOW_CONNECTIONS true" >/dev/null 2>&1'
    pg_query "$MAINTENANCE_DB" "ALTER DATABASE $(sql_ident "$DB") WITH ALLOW_CONNECTIONS false" >/dev/null
  fi
  pg_script "$MAINTENANCE_DB" "$PRIVATE_TMP/swap.sql" >/dev/null
  # shellcheck disable=SC2034  # read by the cleanup registered above
  REALLOW_ON_FAILURE=""
  DOWNTIME_SECONDS=$(($(date -u +%s) - started))
  log "swapped: $SIDE_DB is now $DB${KEPT_NAME:+, the previous one is kept as $KEPT_NAME} (${DOWNTIME_SECONDS}s without connections)"
}
