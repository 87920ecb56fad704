#!/usr/bin/env bash
# shellcheck shell=bash
# The steps of backup.sh, one function each. Sourced by backup.sh after common.sh and pg.sh; they
# read and set backup.sh's globals (DB, ID, PARTIAL, DB_DIR, ...), documented at each function.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=compress.sh
source "$(dirname "${BASH_SOURCE[0]}")/compress.sh"

# die_write_failed WHAT: a write on the backup volume failed; say whether the volume is full.
die_write_failed() {
  local avail
  avail="$(df -P -B1 -- "$BACKUP_DIR" 2>/dev/null | sed -n '2p' | tr -s ' ' | cut -d' ' -f4)"
  if [[ -n "$avail" ]] && ((avail < 1048576)); then
    die "$EX_NO_SPACE" "the backup volume is full (could not $1)" "$(pg_error_fix "$EX_NO_SPACE")"
  fi
  die "$EX_STEP_FAILED" "could not $1" "check that the backup volume is mounted read-write and healthy"
}

# warn_if_volume_looks_small: the newest set's size against the room left (a warning only; the
# new dump may be smaller, and a real ENOSPC is reported clearly when it happens).
warn_if_volume_looks_small() {
  local latest last_bytes avail
  latest="$(latest_verified_id "$DB_DIR" || true)"
  [[ -n "$latest" ]] || return 0
  last_bytes="$(manifest_field "$DB_DIR/$latest/manifest.json" total_bytes || echo 0)"
  avail="$(df -P -B1 -- "$BACKUP_DIR" | sed -n '2p' | tr -s ' ' | cut -d' ' -f4)"
  if [[ "$last_bytes" =~ ^[0-9]+$ && "$avail" =~ ^[0-9]+$ ]] && ((avail < last_bytes)); then
    warn "only $avail bytes free on the backup volume, the last set took $last_bytes"
  fi
}

# dump_globals FILE: roles, memberships, role settings (pg_dumpall --globals-only). The file
# holds password hashes: mode 0600, never printed. Without superuser, dump without passwords.
dump_globals() {
  local file="$1"
  local args=(--globals-only -w -l "$DB" -f "$file")
  GLOBALS_KIND=full
  if [[ "$IS_SUPERUSER" != t ]]; then
    args+=(--no-role-passwords)
    GLOBALS_KIND=no-role-passwords
    warn "${PGUSER:-the backup role} is not a superuser: roles are saved without their passwords"
  fi
  if ! (umask 077 && pg_dumpall "${args[@]}") 2>"$PRIVATE_TMP/globals.err"; then
    fail_pg_step "pg_dumpall --globals-only" "$PRIVATE_TMP/globals.err"
  fi
  chmod 600 "$file"
}

# dump_database DUMP_DIR: the directory-format dump, taken in a snapshot that a psql session
# exports and keeps open until pg_dump is done. Sets TABLES_JSON (the tables and their rows, as
# saved) and ROW_COUNTS_MODE. On the external zstd route the rows are counted from the dump's own
# data files while these are compressed (no second scan of the tables), always exact; otherwise
# the session counts them in the snapshot meanwhile, or records the planner's estimates above
# EXACT_ROW_COUNT_MAX_BYTES.
dump_database() {
  local dump_dir="$1" snapshot="" rc=0 counted_by=session
  [[ "$COMPRESS_ROUTE" != external ]] || counted_by=stream
  ROW_COUNTS_MODE=exact
  if [[ "$counted_by" == session ]] && (($(table_bytes) > EXACT_ROW_COUNT_MAX_BYTES)); then
    ROW_COUNTS_MODE=estimate
    log "tables hold more than EXACT_ROW_COUNT_MAX_BYTES=$EXACT_ROW_COUNT_MAX_BYTES bytes: recording row estimates"
  fi

  coproc SNAPSHOT_SESSION {
    exec "${PSQL[@]}" -d "$(conninfo_db "$DB")" 2>"$PRIVATE_TMP/snapshot.err"
  }
  # shellcheck disable=SC2016  # expanded when the cleanup runs
  # (never `kill 0`: bash unsets the variable once the session has ended.)
  add_cleanup '[[ -z "${SNAPSHOT_SESSION_PID:-}" ]] || kill "$SNAPSHOT_SESSION_PID" 2>/dev/null'
  printf '%s\n' "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;" "SELECT pg_export_snapshot();" \
    >&"${SNAPSHOT_SESSION[1]}"
  IFS= read -r snapshot <&"${SNAPSHOT_SESSION[0]}" || true
  [[ -n "$snapshot" ]] || fail_pg_step "exporting a snapshot for the dump" "$PRIVATE_TMP/snapshot.err"
  if [[ "$counted_by" == session ]]; then
    printf '%s;\n' "$(tables_sql "$ROW_COUNTS_MODE")" >&"${SNAPSHOT_SESSION[1]}"
  fi

  log "pg_dump started (snapshot $snapshot)"
  local lock_wait=()
  [[ -z "${LOCK_WAIT_TIMEOUT:-}" ]] || lock_wait=("--lock-wait-timeout=$LOCK_WAIT_TIMEOUT")
  # --no-sync: pg_dump would end by opening every file in the folder to flush it, while the
  # compressors are removing the plain ones (it then fails on a vanished file) and would write
  # those to disk for nothing. write_manifest flushes the set, once, as it is kept.
  local pg_dump=(pg_dump -w -Fd -j "$DUMP_JOBS" --snapshot="$snapshot" --no-sync "${COMPRESS_ARGS[@]}"
    "${lock_wait[@]}" -f "$dump_dir")
  if [[ "$counted_by" == stream ]]; then
    mkdir -m 700 -- "$PRIVATE_TMP/zstd"
    dump_compressing "$dump_dir" "$PRIVATE_TMP/zstd" "$PRIVATE_TMP/pg_dump.err" "${pg_dump[@]}" || rc=$?
  else
    run_child "${pg_dump[@]}" 2>"$PRIVATE_TMP/pg_dump.err" || rc=$?
  fi
  if ((rc != 0)); then
    fail_pg_step "pg_dump (exit $rc)" "$PRIVATE_TMP/pg_dump.err"
  fi
  if [[ "$counted_by" == stream ]]; then
    printf '%s;\n' "$(tables_sql counted "$(dumped_rows "$dump_dir" "$PRIVATE_TMP/zstd")")" \
      >&"${SNAPSHOT_SESSION[1]}"
  fi

  TABLES_JSON=""
  IFS= read -r TABLES_JSON <&"${SNAPSHOT_SESSION[0]}" || true
  [[ "$TABLES_JSON" == \[* ]] || fail_pg_step "listing the dumped tables and their rows" "$PRIVATE_TMP/snapshot.err"
  printf '%s\n' "COMMIT;" '\q' >&"${SNAPSHOT_SESSION[1]}"
  wait "$SNAPSHOT_SESSION_PID" 2>/dev/null || true
  local compressed=""
  [[ "$counted_by" != stream ]] || compressed=" (data files compressed with zstd -$ZSTD_LEVEL)"
  log "pg_dump done: $(dir_bytes "$dump_dir") bytes$compressed"
}

# table_bytes: the size of the database's tables, from relpages (no lock: a table locked by the
# app cannot stall us here, as pg_relation_size() could).
table_bytes() {
  pg_query "$DB" "SELECT coalesce(sum(c.relpages::bigint * current_setting('block_size')::bigint), 0)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
}

# dumped_rows DUMP_DIR COUNTS: `(<table oid>, <rows>)` pairs, comma-separated, for the TABLE DATA
# entries of the dump whose rows were counted into COUNTS/<id>.dat.rows (any other table is
# counted by the snapshot session). The archive's list names each entry
# `<id>; 0 <table oid> TABLE DATA ...`.
dumped_rows() {
  local dir="$1" counts="$2" id oid rows sep=""
  pg_restore --list -- "$dir" 2>"$PRIVATE_TMP/list.err" >"$PRIVATE_TMP/data.list" ||
    fail_pg_step "pg_restore --list of the new dump" "$PRIVATE_TMP/list.err"
  while read -r id oid; do
    rows="$(cat -- "$counts/$id.dat.rows" 2>/dev/null || echo -)"
    [[ "$rows" =~ ^[0-9]+$ ]] || continue
    printf '%s(%s::oid, %s::bigint)' "$sep" "$oid" "$rows"
    sep=", "
  done < <(sed -n 's/^\([0-9][0-9]*\); [0-9][0-9]* \([0-9][0-9]*\) TABLE DATA .*/\1 \2/p' "$PRIVATE_TMP/data.list")
}

# write_checksums SET_DIR: SHA256SUMS over every file but itself and the manifest. The sums of
# the files zstd wrote come from its stream ($PRIVATE_TMP/zstd/*.sum); the rest are read here.
write_checksums() {
  local dir="$1" known="$PRIVATE_TMP/zstd"
  (
    cd "$dir" || exit 1
    shopt -s nullglob # a database without tables has no data files, so no streamed sums
    streamed=("$known"/*.sum)
    files=(globals.sql)
    for path in dump/*; do
      [[ "$path" == *.dat.zst && -f "$known/$(basename -- "$path" .zst).sum" ]] || files+=("$path")
    done
    { sha256_files "${files[@]}" && if ((${#streamed[@]} > 0)); then cat -- "${streamed[@]}"; fi; } |
      LC_ALL=C sort -k 2 >SHA256SUMS.tmp
  ) 2>"$PRIVATE_TMP/sums.err" || die_write_failed "write $dir/SHA256SUMS"
  mv -- "$dir/SHA256SUMS.tmp" "$dir/SHA256SUMS"
}

# build_files_json SET_DIR: FILES_JSON = [{path,size,sha256}] from SHA256SUMS, and TOTAL_BYTES.
build_files_json() {
  local dir="$1" sum path size sep="" out="["
  TOTAL_BYTES=0
  while read -r sum path; do
    size="$(stat -c %s -- "$dir/$path")"
    TOTAL_BYTES=$((TOTAL_BYTES + size))
    out+="$sep{\"path\":$(json_string "$path"),\"size\":$size,\"sha256\":\"$sum\"}"
    sep=","
  done <"$dir/SHA256SUMS"
  FILES_JSON="$out]"
}

# write_manifest SET_DIR: manifest.json, last: temp name, fsync, rename. Every top-level scalar
# on its own line so the shell steps can read it with sed.
write_manifest() {
  local dir="$1" tmp="$1/manifest.json.tmp"
  build_files_json "$dir"
  {
    printf '{\n'
    printf '  "format": 1,\n'
    printf '  "id": "%s",\n' "$ID"
    printf '  "database": %s,\n' "$(json_string "$DB")"
    printf '  "status": "verified",\n'
    printf '  "started_at": "%s",\n' "$STARTED_AT"
    printf '  "finished_at": "%s",\n' "$FINISHED_AT"
    printf '  "server_version": %s,\n' "$(json_string "$SERVER_VERSION")"
    printf '  "server_version_num": %d,\n' "$SERVER_VERSION_NUM"
    printf '  "pg_dump_version": "%s",\n' "$PG_DUMP_VERSION"
    printf '  "archive_version": "%s",\n' "$ARCHIVE_VERSION"
    printf '  "compression": "%s",\n' "$COMPRESS_METHOD"
    printf '  "dump_format": "directory",\n'
    printf '  "dump_jobs": %d,\n' "$DUMP_JOBS"
    printf '  "total_bytes": %d,\n' "$TOTAL_BYTES"
    printf '  "row_counts": "%s",\n' "$ROW_COUNTS_MODE"
    printf '  "globals": "%s",\n' "$GLOBALS_KIND"
    printf '  "files": %s,\n' "$FILES_JSON"
    printf '  "tables": %s,\n' "$TABLES_JSON"
    printf '  "database_settings": %s,\n' "$DB_SETTINGS_JSON"
    printf '  "verification": {"checksums": "ok", "archive_listing": "ok", "toc_entries": %d}\n' \
      "$TOC_ENTRIES"
    printf '}\n'
  } >"$tmp" 2>/dev/null || die_write_failed "write $tmp"
  sync -- "$dir"/dump/* "$dir/globals.sql" "$dir/SHA256SUMS" "$tmp" 2>/dev/null ||
    die_write_failed "flush the new set to disk"
  mv -- "$tmp" "$dir/manifest.json"
  sync -- "$dir/dump" "$dir" 2>/dev/null || true
}

# delete_set PATH: the manifest goes first, so an interrupted delete leaves an incomplete set
# (never restored, cleaned later), never a complete-looking one with files missing.
delete_set() {
  rm -f -- "$1/manifest.json"
  sync -- "$1" 2>/dev/null || true
  rm -rf -- "$1"
}

# apply_retention: delete verified sets older than RETENTION_DAYS beyond the newest KEEP_MIN
# (with RETAIN_UNTIL_OFFSITE=1 only those upload.sh marked offsite);
# incomplete ones (no verified manifest, or .partial) once untouched for a day, never counted.
# Then logs older than RETENTION_DAYS. Runs under the database lock, after a successful backup.
# SKIP_RETENTION=1 (the fresh backup a restore takes first) deletes nothing: the set about to be
# restored may be the oldest one kept; the next scheduled run applies retention.
apply_retention() {
  local now id path age verified=0 deleted=0 max_age=$((RETENTION_DAYS * 86400)) log_file
  if [[ "${SKIP_RETENTION:-0}" == 1 ]]; then
    log "retention: skipped (SKIP_RETENTION=1, a backup taken before a restore)"
    return 0
  fi
  now="$(date -u +%s)"
  while IFS= read -r id; do
    path="$DB_DIR/$id"
    if set_is_verified "$path"; then
      verified=$((verified + 1))
      age=$((now - $(id_epoch "$id")))
      if ((verified > KEEP_MIN && age > max_age)); then
        if [[ "${RETAIN_UNTIL_OFFSITE:-0}" == 1 && ! -f "$path/$OFFSITE_MARK" ]]; then
          warn "retention: keeping $id ($((age / 86400)) days old): no upload has marked it offsite yet (.offsite), so it may be its only copy; the next upload sends or marks it — if this lasts, see why the uploads fail (pgbackup status)"
          continue
        fi
        log "retention: deleting $id ($((age / 86400)) days old; $KEEP_MIN newer verified sets kept)"
        delete_set "$path"
        deleted=$((deleted + 1))
      fi
    else
      age=$((now - $(stat -c %Y -- "$path")))
      if ((age > 86400)); then
        log "retention: deleting the incomplete set $id"
        delete_set "$path"
        deleted=$((deleted + 1))
      fi
    fi
  done < <(set_ids "$DB_DIR" | sort -rV)
  for path in "$DB_DIR"/*.partial; do
    [[ -d "$path" && "$path" != "$PARTIAL" ]] || continue
    age=$((now - $(stat -c %Y -- "$path")))
    if ((age > 86400)); then
      log "retention: deleting the abandoned $(basename "$path")"
      rm -rf -- "$path"
      deleted=$((deleted + 1))
    fi
  done
  for log_file in "$BACKUP_DIR"/backup_*.log; do
    [[ -f "$log_file" ]] || continue
    id="$(basename "$log_file" .log)"
    id="${id#backup_}"
    is_backup_id "$id" || continue
    if (($(id_epoch "$id") < now - max_age)); then
      rm -f -- "$log_file"
    fi
  done
  log "retention: $verified verified sets found, $deleted deleted (RETENTION_DAYS=$RETENTION_DAYS, KEEP_MIN=$KEEP_MIN)"
}
