#!/usr/bin/env bash
# drill.sh — restore drill of PGDATABASE's set BACKUP_ID (default latest) on the backup volume:
# start a throwaway PostgreSQL server on DRILL_DIR (an emptyDir of the drill pod, as the container's
# non-root user), restore the set there with restore.sh (TARGET_DATABASE: a scratch database, no
# swap), check every table's rows against the manifest, run amcheck where available, then drop the
# scratch database, stop the server and delete its data. Never connects to the live server.
# DRILL_SERVER=external uses the server PG* names instead (a throwaway one the caller started).
# stdout: one JSON line {"event":"drill",...,"status":"passed"}; a corrupt set exits 65 (CORRUPT).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
SCRIPT_DIR="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"
# shellcheck source=pg.sh
source "$SCRIPT_DIR/pg.sh"
SUMMARY_EVENT=drill

DB="${PGDATABASE:-}"
require_folder_name PGDATABASE "$DB"
BACKUP_ID="${BACKUP_ID:-latest}"
DRILL_SERVER="${DRILL_SERVER:-throwaway}"
DRILL_DIR="${DRILL_DIR:-${TMPDIR:-/tmp}/pgbackup-drill}"
DRILL_PORT="${DRILL_PORT:-54329}"
case "$DRILL_SERVER" in
  throwaway | external) ;;
  *) die "$EX_USAGE" "DRILL_SERVER '$DRILL_SERVER' is not throwaway or external" \
    "unset it (a throwaway server in DRILL_DIR) or set external (the server PG* names)" ;;
esac
require_tool psql pg_restore "$SHA256_TOOL"
STARTED_EPOCH="$(date -u +%s)"
init_private_tmp

# -- the set: present, verified, checksums intact (nothing started yet) ------------------------
DB_DIR="$BACKUP_DIR/$DB"
if [[ "$BACKUP_ID" == latest ]]; then
  ID="$(latest_verified_id "$DB_DIR")" ||
    die "$EX_NOT_FOUND" "no verified backup of $DB in $DB_DIR" \
      "run a backup first (pgbackup backup), or fetch one from offsite"
else
  is_backup_id "$BACKUP_ID" ||
    die "$EX_USAGE" "BACKUP_ID '$BACKUP_ID' is not a set id" "use an id from pgbackup list, or latest"
  ID="$BACKUP_ID"
fi
SET_DIR="$DB_DIR/$ID"
[[ -f "$SET_DIR/manifest.json" ]] ||
  die "$EX_CORRUPT" "CORRUPT: set $DB/$ID has no manifest (incomplete)" "drill another set"
set_is_verified "$SET_DIR" ||
  die "$EX_CORRUPT" "CORRUPT: set $DB/$ID is not verified (its manifest says failed)" \
    "look at the backup's log; the next scheduled backup replaces it"
if ! check_sums "$SET_DIR" >"$PRIVATE_TMP/sums.out" 2>&1; then
  while IFS= read -r line; do log "  $line"; done <"$PRIVATE_TMP/sums.out"
  die "$EX_CORRUPT" "CORRUPT: set $DB/$ID does not match its checksums" \
    "this copy is damaged: fetch the set again from offsite, or rely on another set"
fi
log "drill of $DB set $ID: checksums match"

# -- the throwaway server --------------------------------------------------------------------
# initdb and postgres look the user up; an arbitrary runAsUser has no passwd entry, so give it one
# the way the postgres image's own entrypoint does (nss_wrapper).
use_nss_wrapper() {
  id -un >/dev/null 2>&1 && return 0
  local wrapper
  for wrapper in /usr/lib/libnss_wrapper.so /usr/lib/*/libnss_wrapper.so /lib/*/libnss_wrapper.so; do
    if [[ -s "$wrapper" ]]; then
      printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' "$(id -u)" "$(id -g)" "$DRILL_DIR" \
        >"$PRIVATE_TMP/passwd"
      printf 'postgres:x:%s:\n' "$(id -g)" >"$PRIVATE_TMP/group"
      export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD="$PRIVATE_TMP/passwd" \
        NSS_WRAPPER_GROUP="$PRIVATE_TMP/group"
      return 0
    fi
  done
  die "$EX_CONFIG" "user $(id -u) has no passwd entry and nss_wrapper is missing" \
    "run the drill in the official postgres image (it ships nss_wrapper)"
}

stop_server() {
  pg_ctl -D "$DRILL_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf -- "$DRILL_DIR/data" "$DRILL_DIR/run" "$DRILL_DIR/server.log"
}

start_server() {
  require_tool initdb pg_ctl
  [[ "$(id -u)" != 0 ]] ||
    die "$EX_CONFIG" "the drill's throwaway server cannot run as root" \
      "run the drill pod with a non-root runAsUser (the CronJob does)"
  use_nss_wrapper
  mkdir -p "$DRILL_DIR" ||
    die "$EX_NO_SPACE" "cannot create DRILL_DIR $DRILL_DIR" "mount a writable emptyDir there"
  rm -rf -- "$DRILL_DIR/data" "$DRILL_DIR/run"
  mkdir -m 700 "$DRILL_DIR/run"
  add_cleanup stop_server
  if ! initdb -D "$DRILL_DIR/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-sync >"$PRIVATE_TMP/initdb.log" 2>&1; then
    fail_pg_step "initdb of the throwaway server" "$PRIVATE_TMP/initdb.log"
  fi
  # Sockets only, no TCP: nothing outside this container can reach the scratch copy. The server
  # outlives this script if it is killed: it must not hold the stdout the CLI reads to its end.
  if ! pg_ctl -D "$DRILL_DIR/data" -l "$DRILL_DIR/server.log" -w -t 60 start \
    -o "-c listen_addresses='' -c port=$DRILL_PORT -c unix_socket_directories='$DRILL_DIR/run' -c fsync=off -c full_page_writes=off" \
    >"$PRIVATE_TMP/pg_ctl.log" 2>&1 {SUMMARY_FD}>&-; then
    cat "$DRILL_DIR/server.log" >>"$PRIVATE_TMP/pg_ctl.log" 2>/dev/null || true
    fail_pg_step "starting the throwaway server" "$PRIVATE_TMP/pg_ctl.log"
  fi
  # From here on every client talks to the throwaway server, never to the live one.
  unset PGHOSTADDR PGSERVICE PGPASSFILE PGPASSWORD_FILE PGSSLROOTCERT
  export PGHOST="$DRILL_DIR/run" PGPORT="$DRILL_PORT" PGUSER=postgres PGSSLMODE=disable
  log "throwaway server $(tool_version postgres || echo) started in $DRILL_DIR (socket only)"
}

if [[ "$DRILL_SERVER" == throwaway ]]; then
  start_server
  SERVER_LABEL="throwaway"
else
  setup_pgpass
  SERVER_LABEL="external"
fi

# -- restore into a scratch database ---------------------------------------------------------
SCRATCH="${DB:0:30}__drill_${ID}"
drop_scratch() {
  "${PSQL[@]}" -d "$(conninfo_db postgres)" \
    -c "DROP DATABASE IF EXISTS $(printf '"%s"' "${SCRATCH//\"/\"\"}") WITH (FORCE)" \
    >/dev/null 2>&1 || warn "could not drop the scratch database $SCRATCH"
}
[[ "$(pg_query postgres "SELECT count(*) FROM pg_database WHERE datname = $(sql_literal "$SCRATCH")")" == 0 ]] ||
  die "$EX_USAGE" "scratch database $SCRATCH exists already (an earlier drill did not finish)" \
    "drop it (DROP DATABASE \"$SCRATCH\") and run the drill again"
add_cleanup drop_scratch
RESTORE_OUT="$PRIVATE_TMP/restore.out"
rc=0
PGDATABASE="$DB" BACKUP_ID="$ID" TARGET_DATABASE="$SCRATCH" RESTORE_STEP=all \
  MAINTENANCE_DB=postgres run_child bash "$SCRIPT_DIR/restore.sh" >"$RESTORE_OUT" || rc=$?
if ((rc != 0)); then
  # Only a set that fails its checks (65) or whose load fails (70) is reported CORRUPT; any other
  # exit is about where the drill ran (a refused name, the server, room, a signal such as an OOM
  # kill), and says nothing against the set.
  case "$rc" in
    "$EX_CORRUPT" | "$EX_STEP_FAILED")
      die "$EX_CORRUPT" "CORRUPT: set $DB/$ID does not restore (restore.sh exit $rc)" \
        "see restore.sh's error above; rely on another set and find out why this one is broken" ;;
    *)
      code="$rc"
      ((rc < 128)) || code="$EX_STEP_FAILED"
      die "$code" "the drill's restore of $DB/$ID could not run (exit $rc)" \
        "see restore.sh's error above, fix it and run the drill again" ;;
  esac
fi

# -- checks: every table's rows against the manifest, then amcheck --------------------------
ROW_MODE="$(manifest_field "$SET_DIR/manifest.json" row_counts || echo exact)"
CHECK_SQL="$PRIVATE_TMP/check.sql"
{
  # psql reads the manifest itself (no jq in the image); the backticks are psql's, not ours.
  # shellcheck disable=SC2016
  printf '\\set manifest `cat %s`\n' "'$SET_DIR/manifest.json'"
  cat <<'SQL'
WITH t AS (
  SELECT e->>'schema' AS s, e->>'name' AS n, (e->>'rows')::bigint AS expected
  FROM json_array_elements((:'manifest')::json -> 'tables') e
), c AS (
  SELECT s, n, expected,
         (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', s, n),
                 false, true, '')))[1]::text::bigint AS actual
  FROM t
)
SELECT count(*) || ' ' || coalesce(sum(actual), 0) || ' ' ||
       coalesce(string_agg(CASE WHEN (:'mode' = 'exact' AND actual <> expected)
                                  OR (:'mode' <> 'exact' AND abs(actual - expected) > expected / 10 + 10)
                                THEN format('%s.%s=%s(manifest %s)', s, n, actual, expected) END, ','), '')
FROM c;
SQL
} >"$CHECK_SQL"
if ! CHECK="$("${PSQL[@]}" -v mode="$ROW_MODE" -d "$(conninfo_db "$SCRATCH")" -f "$CHECK_SQL" 2>"$PRIVATE_TMP/check.err")"; then
  while IFS= read -r line; do log "  $line"; done <"$PRIVATE_TMP/check.err"
  die "$EX_CORRUPT" "CORRUPT: a table of set $DB/$ID is missing or unreadable after the restore" \
    "rely on another set and find out why this one is broken"
fi
read -r TABLES ROWS MISMATCH <<<"$CHECK"
if [[ -n "${MISMATCH:-}" ]]; then
  die "$EX_CORRUPT" "CORRUPT: row counts of set $DB/$ID differ from its manifest: $MISMATCH" \
    "rely on another set and find out why this one is broken"
fi
log "rows: $TABLES tables, $ROWS rows match the manifest ($ROW_MODE counts)"

AMCHECK=unavailable
if command -v pg_amcheck >/dev/null 2>&1; then
  # pg_amcheck exits 2 when it finds corruption, 1 when it could not check.
  rc=0
  pg_amcheck --install-missing --heapallindexed --maintenance-db=postgres --database="$SCRATCH" \
    >"$PRIVATE_TMP/amcheck.out" 2>&1 || rc=$?
  if ((rc == 0)); then
    AMCHECK=pg_amcheck
  elif ((rc != 2)) && grep -qiE 'could not open extension control file|extension "amcheck" is not available' \
    "$PRIVATE_TMP/amcheck.out"; then
    warn "amcheck is not installed on this server: index and heap checks skipped"
  else
    while IFS= read -r line; do log "  $line"; done <"$PRIVATE_TMP/amcheck.out"
    ((rc == 2)) || die "$EX_STEP_FAILED" "pg_amcheck could not check $SCRATCH (exit $rc)" \
      "see its output above; the set's rows did match its manifest"
    die "$EX_CORRUPT" "CORRUPT: amcheck found damage in the restored copy of set $DB/$ID" \
      "rely on another set and find out why this one is broken"
  fi
else
  warn "pg_amcheck is not installed: index and heap checks skipped"
fi
[[ "$AMCHECK" == unavailable ]] || log "amcheck: indexes and heap of $SCRATCH are consistent"

drop_scratch
SECONDS_TAKEN=$(($(date -u +%s) - STARTED_EPOCH))
log "drill of $DB set $ID passed in ${SECONDS_TAKEN}s"
printf '{"event":"drill","database":%s,"id":%s,"server":"%s","scratch":%s,"tables":%d,"rows":%d,"row_counts":%s,"amcheck":"%s","seconds":%d,"finished_at":"%s","status":"passed"}\n' \
  "$(json_string "$DB")" "$(json_string "$ID")" "$SERVER_LABEL" "$(json_string "$SCRATCH")" \
  "$TABLES" "$ROWS" "$(json_string "$ROW_MODE")" "$AMCHECK" "$SECONDS_TAKEN" "$(utc_now)"
