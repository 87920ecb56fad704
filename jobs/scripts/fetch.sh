#!/usr/bin/env bash
# Bring one backup set from s3://$S3_BUCKET/$S3_PREFIX/<db>/<id>/ onto the volume (or FETCH_TO).
#
# BACKUP_ID is an id or `latest` (the newest offsite set whose manifest exists and says verified);
# DATABASE (else PGDATABASE) names the database. The set is downloaded into `<id>.partial`, checked
# (manifest present and verified, its file list against SHA256SUMS, every sha256), flushed to
# disk and only then renamed to `<id>`: a corrupted or cut-short download is refused, its partial
# folder removed, and nothing ever appears under the final name. A set already there and intact is
# not downloaded again.
#
# Destination: $BACKUP_DIR/<db>/<id> (locked like backup and restore), or FETCH_TO/<id> when
# FETCH_TO is set (`pgbackup download --to DIR`; the folder is locked too). Another stack's set
# (SOURCE_STACK, read with that stack's grant) goes to $BACKUP_DIR/.stacks/<stack>/<db>/<id>, apart
# from this stack's own sets; it is a copy for the restore at hand (restore.sh removes it once that
# has succeeded), and fetching one removes the copies failed rehearsals left there over a day ago.
#
# Runs in amazon/aws-cli (aws v2) and locally (aws v1 from PyPI): bash, coreutils and `aws` only.
# Progress on stderr; stdout: one JSON summary line.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SUMMARY_EVENT="fetch"
# The set holds the database's globals (roles): keep every file private to this user.
umask 077

# shellcheck source-path=SCRIPTDIR source=offsite.sh
source "$(dirname "${BASH_SOURCE[0]}")/offsite.sh"

# -- finding the set offsite ----------------------------------------------------------------------
# offsite_ids LISTING DB_KEY: ids that have a manifest offsite, newest first.
offsite_ids() {
  local k s rest
  while IFS=$'\t' read -r k s; do
    [[ "$k" == "$2"*/manifest.json ]] || continue
    rest="${k#"$2"}"
    rest="${rest%/manifest.json}"
    if is_backup_id "$rest"; then printf '%s\n' "$rest"; fi
  done <"$1" | sort -r -V
}

# offsite_manifest_verified ID: true when the offsite manifest of ID says verified.
offsite_manifest_verified() {
  local copy="$PRIVATE_TMP/manifest.$1.json"
  s3_aws s3 cp "s3://$S3_BUCKET/$DB_KEY$1/manifest.json" "$copy" --only-show-errors >&2 ||
    s3_fail "reading the manifest of $DATABASE_NAME/$1"
  set_is_verified_manifest "$copy"
}

set_is_verified_manifest() { [[ "$(manifest_field "$1" status || true)" == "verified" ]]; }

# listing_under LISTING PREFIX: the lines of LISTING (key<TAB>size) whose key starts with PREFIX.
listing_under() {
  local k s
  while IFS=$'\t' read -r k s; do
    if [[ "$k" == "$2"* ]]; then printf '%s\t%s\n' "$k" "$s"; fi
  done <"$1"
}

# resolve_id LISTING: sets SET_ID to the id BACKUP_ID names (latest: the newest offsite set whose
# manifest says verified), or fails clearly.
resolve_id() {
  local listing="$1" id
  if [[ "$REQUESTED_ID" == "latest" ]]; then
    while IFS= read -r id; do
      if offsite_manifest_verified "$id"; then
        SET_ID="$id"
        return 0
      fi
      log "fetch: offsite set $DATABASE_NAME/$id is not verified, looking at an older one"
    done < <(offsite_ids "$listing" "$DB_KEY")
    die "$EX_NOT_FOUND" "no verified backup of $DATABASE_NAME in s3://$S3_BUCKET/$DB_KEY" \
      "check S3_PREFIX and the database name, or run a backup and its upload first"
  fi
  if [[ -z "$(listing_under "$listing" "$DB_KEY$REQUESTED_ID/")" ]]; then
    die "$EX_NOT_FOUND" "no backup $REQUESTED_ID of $DATABASE_NAME in s3://$S3_BUCKET/$DB_KEY" \
      "pick an id that exists offsite (pgbackup list) or BACKUP_ID=latest"
  fi
  if [[ -z "$(listing_under "$listing" "$DB_KEY$REQUESTED_ID/manifest.json")" ]]; then
    die "$EX_CORRUPT" "offsite set $DATABASE_NAME/$REQUESTED_ID has no manifest: its upload never finished" \
      "pick another backup (pgbackup list), or re-run the upload from the volume that holds it"
  fi
  SET_ID="$REQUESTED_ID"
}

# -- checking a set folder ------------------------------------------------------------------------
# check_set DIR ID: refuse (return 1, reason on stderr) unless DIR is the complete, intact set ID:
# a verified manifest for this database and id, a manifest file list that agrees with SHA256SUMS
# and with the files' sizes, and every checksum right.
check_set() {
  local dir="$1" id="$2" manifest="$1/manifest.json"
  if [[ ! -f "$manifest" ]]; then
    log "fetch: $dir has no manifest.json"
    return 1
  fi
  if ! set_is_verified_manifest "$manifest"; then
    log "fetch: the manifest of $dir does not say \"status\": \"verified\""
    return 1
  fi
  if [[ "$(manifest_field "$manifest" id || true)" != "$id" ||
    "$(manifest_field "$manifest" database || true)" != "$DATABASE_NAME" ]]; then
    log "fetch: the manifest of $dir is not the one of $DATABASE_NAME/$id"
    return 1
  fi
  if [[ ! -f "$dir/SHA256SUMS" ]]; then
    log "fetch: $dir has no SHA256SUMS"
    return 1
  fi
  if ! check_manifest_files "$dir" >"$PRIVATE_TMP/files.out"; then
    log "fetch: $(head -n 1 "$PRIVATE_TMP/files.out")"
    return 1
  fi
  if ! check_sums "$dir" >"$PRIVATE_TMP/sha.out" 2>&1; then
    log "fetch: checksum mismatch: $(head -n 3 "$PRIVATE_TMP/sha.out" | tr '\n' ' ')"
    return 1
  fi
}

# flush_set DIR: fsync every file of the set and its folders before the rename makes it count
# (falls back to a full sync where `sync FILE` is not supported).
flush_set() {
  local dir="$1" sum path
  local -a paths=("$dir/manifest.json" "$dir/SHA256SUMS")
  local -A folders=(["$dir"]=1)
  while read -r sum path; do
    [[ -n "$sum" ]] || continue
    path="$dir/${path#\*}"
    paths+=("$path")
    folders["${path%/*}"]=1
  done <"$dir/SHA256SUMS"
  sync -- "${paths[@]}" "${!folders[@]}" 2>/dev/null || sync
}

# drop_abandoned_copies PARENT ID: remove the other sets (and partial downloads) in PARENT, another
# stack's folder on this volume, that were fetched more than a day ago. A rehearsal's restore
# removes its copy when it succeeds; these are what failed or abandoned ones left, which would
# otherwise stay until the volume that this stack's own backups need is full. A day: no rehearsal
# still running needs one (its prepare and swap run minutes apart). Symbolic links are not
# followed. The caller holds PARENT's lock, which restore.sh takes too.
drop_abandoned_copies() {
  local path name day_ago
  day_ago=$(($(date +%s) - 86400))
  for path in "$1"/*; do
    name="${path##*/}"
    if [[ -L "$path" || ! -d "$path" || "$name" == "$2" ]] || ! is_backup_id "${name%.partial}"; then
      continue
    fi
    (($(stat -c %Y -- "$path") < day_ago)) || continue
    log "fetch: removing $path, a copy of a set of stack $SOURCE_STACK fetched over a day ago (its original stays offsite)"
    rm -rf -- "$path"
  done
}

# -- main -----------------------------------------------------------------------------------------
summary() {
  printf '{"event":"fetch","status":"verified","database":%s,"id":%s,"path":%s,"bytes":%d,"files":%d,"downloaded":%s,"seconds":%d}\n' \
    "$(json_string "$DATABASE_NAME")" "$(json_string "$1")" "$(json_string "$2")" \
    "$(dir_bytes "$2")" "$3" "$4" "$(($(date +%s) - STARTED))"
}

main() {
  local listing id parent final key need avail files=0
  STARTED="$(date +%s)"
  DATABASE_NAME="${DATABASE:-${PGDATABASE:-}}"
  [[ -n "$DATABASE_NAME" ]] ||
    die "$EX_CONFIG" "no database named" "set DATABASE (or PGDATABASE) to the database whose backup to fetch"
  require_folder_name DATABASE "$DATABASE_NAME"
  require_stack_name
  REQUESTED_ID="${BACKUP_ID:-latest}"
  [[ "$REQUESTED_ID" == "latest" ]] || is_backup_id "$REQUESTED_ID" ||
    die "$EX_USAGE" "BACKUP_ID '$REQUESTED_ID' is not a backup id" \
      "use an id such as 20260119t020000z (pgbackup list shows them) or latest"
  s3_setup
  require_tool "$SHA256_TOOL"
  DB_KEY="$S3_BASE$DATABASE_NAME/"

  if [[ -n "${FETCH_TO:-}" ]]; then
    parent="$FETCH_TO"
    mkdir -p -- "$parent" 2>/dev/null ||
      die "$EX_DENIED" "cannot create the folder $parent" "pick a folder you can write to"
    # The folder is the user's: it is locked through the folder itself, leaving no lock file.
    { exec {LOCK_FD}<"$parent"; } 2>/dev/null ||
      die "$EX_DENIED" "cannot read the folder $parent" "pick a folder you can read and write"
    flock -n "$LOCK_FD" ||
      die "$EX_LOCKED" "another download into $parent is running (it holds a lock on the folder)" \
        "wait for it to finish, or download into another folder"
  else
    # A disaster recovery starts from an empty volume: the database folder is made here.
    parent="$(sets_folder "$DATABASE_NAME")"
    lock_database_dir "$parent"
  fi

  listing="$PRIVATE_TMP/listing"
  s3_list "$DB_KEY" "$listing"
  resolve_id "$listing"
  id="$SET_ID"
  final="$parent/$id"
  key="$DB_KEY$id/"

  if [[ -n "${SOURCE_STACK:-}" && -z "${FETCH_TO:-}" ]]; then drop_abandoned_copies "$parent" "$id"; fi
  if [[ -e "$final" ]]; then
    if check_set "$final" "$id"; then
      log "fetch $DATABASE_NAME/$id: already in $final and intact, not downloaded again"
      summary "$id" "$final" "$(wc -l <"$final/SHA256SUMS")" false
      return 0
    fi
    die "$EX_CORRUPT" "$final exists but is not an intact copy of $DATABASE_NAME/$id" \
      "move it aside (nothing is deleted for you), then fetch again"
  fi

  need=0
  while IFS=$'\t' read -r _ size; do need=$((need + size)); done < <(listing_under "$listing" "$key")
  avail="$(df -Pk -- "$parent" | tail -n 1 | tr -s ' ' | cut -d ' ' -f 4)"
  if [[ "$avail" =~ ^[0-9]+$ ]] && ((need > avail * 1024)); then
    die "$EX_NO_SPACE" "$DATABASE_NAME/$id needs $need bytes, $parent has $((avail * 1024)) free" \
      "free space on the volume (or grow it), or fetch into another folder with FETCH_TO"
  fi

  # A partial folder left by an earlier, interrupted fetch is ours (we hold the lock): start over.
  PARTIAL_DIR="$final.partial"
  rm -rf -- "$PARTIAL_DIR"
  # shellcheck disable=SC2016  # expanded when the cleanup runs, not now
  add_cleanup 'if [[ -n "${PARTIAL_DIR:-}" ]]; then rm -rf -- "$PARTIAL_DIR"; fi'
  mkdir -p -- "$PARTIAL_DIR"
  log "fetch $DATABASE_NAME/$id: $need bytes from s3://$S3_BUCKET/$key into $PARTIAL_DIR"
  s3_aws s3 cp "s3://$S3_BUCKET/$key" "$PARTIAL_DIR/" --recursive --only-show-errors >&2 ||
    s3_fail "downloading $DATABASE_NAME/$id"

  if ! check_set "$PARTIAL_DIR" "$id"; then
    die "$EX_CORRUPT" "the offsite copy of $DATABASE_NAME/$id is corrupted or incomplete (removed the download)" \
      "fetch an older backup (BACKUP_ID=<id>), and check the bucket's object versions for this set"
  fi
  if [[ -f "$PARTIAL_DIR/globals.sql" ]]; then chmod 600 "$PARTIAL_DIR/globals.sql"; fi
  files="$(wc -l <"$PARTIAL_DIR/SHA256SUMS")"
  flush_set "$PARTIAL_DIR"
  mv -T -- "$PARTIAL_DIR" "$final" ||
    die "$EX_STEP_FAILED" "cannot rename $PARTIAL_DIR to $final" "check the folder and re-run"
  PARTIAL_DIR=""
  sync -- "$parent" 2>/dev/null || sync
  log "fetch $DATABASE_NAME/$id: verified, in $final"
  summary "$id" "$final" "$files" true
}

main "$@"
