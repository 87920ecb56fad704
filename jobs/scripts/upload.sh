#!/usr/bin/env bash
# Copy the complete backup sets of the volume to s3://$S3_BUCKET/$S3_PREFIX/<db>/<id>/.
#
# A set is copied only when it is complete and verified on the volume, its checksums still hold
# there (one that rotted since its backup is moved aside to <id>.corrupt, and this run then fails
# with 65), and only
# when its manifest is not offsite yet. Each set offsite gets `.offsite` on the volume (see
# OFFSITE_MARK), which lets retention delete it. Every file but the manifest goes first (a file already offsite with the same size
# is not sent again: that is how an interrupted upload resumes), then the sizes of everything are
# checked with ListObjectsV2 (the writer may not GetObject/HeadObject), then the manifest goes last:
# an offsite set without manifest is incomplete and nobody restores it. Nothing is ever deleted
# (offsite expiry is the bucket's lifecycle), so the writer needs no delete permission.
#
# Runs in amazon/aws-cli (aws v2) and locally (aws v1 from PyPI): bash, coreutils and `aws` only,
# with commands both versions have. Progress on stderr; stdout: one JSON summary line.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SUMMARY_EVENT="upload"

# shellcheck source-path=SCRIPTDIR source=offsite.sh
source "$(dirname "${BASH_SOURCE[0]}")/offsite.sh"

# -- upload ---------------------------------------------------------------------------------------
# SSE arguments for every PUT, from S3_SSE / S3_KMS_KEY_ID.
sse_args() {
  SSE_ARGS=()
  case "${S3_SSE:-}" in
    "") ;;
    AES256) SSE_ARGS=(--sse AES256) ;;
    aws:kms)
      SSE_ARGS=(--sse aws:kms)
      [[ -z "${S3_KMS_KEY_ID:-}" ]] || SSE_ARGS+=(--sse-kms-key-id "$S3_KMS_KEY_ID")
      ;;
    *) die "$EX_CONFIG" "S3_SSE='${S3_SSE}' is not supported" "set S3_SSE to aws:kms or AES256" ;;
  esac
  if [[ -n "${S3_KMS_KEY_ID:-}" && "${S3_SSE:-}" != "aws:kms" ]]; then
    die "$EX_CONFIG" "S3_KMS_KEY_ID is set but S3_SSE is '${S3_SSE:-}'" \
      "set S3_SSE=aws:kms to use the key, or unset S3_KMS_KEY_ID"
  fi
}

# local_sizes SET_DIR OUT: "relative/path<TAB>size" of every regular file of the set (no `find`).
local_sizes() {
  local dir="$1" out="$2" path
  local -a files=()
  (
    cd "$dir"
    shopt -s globstar nullglob dotglob
    for path in **; do
      if [[ -f "$path" && "$path" != "$OFFSITE_MARK" ]]; then files+=("$path"); fi
    done
    if ((${#files[@]})); then stat --printf '%n\t%s\n' -- "${files[@]}"; fi
  ) >"$out" || die "$EX_STEP_FAILED" "cannot read the files of $dir" \
    "check that the backup volume is mounted and readable"
}

# offsite_mismatches LOCAL OFFSITE KEY: the lines of LOCAL (path<TAB>size) whose object under KEY
# in OFFSITE (key<TAB>size) is missing or of another size; the manifest is left out.
offsite_mismatches() {
  local local_list="$1" offsite_list="$2" key="$3" path size k s
  local -A remote=()
  while IFS=$'\t' read -r k s; do
    if [[ -n "$k" && "$k" == "$key"* ]]; then remote["${k#"$key"}"]="$s"; fi
  done <"$offsite_list"
  while IFS=$'\t' read -r path size; do
    [[ "$path" == "manifest.json" ]] && continue
    [[ "${remote[$path]:-}" == "$size" ]] || printf '%s\t%s\n' "$path" "$size"
  done <"$local_list"
}

# offsite_size LISTING KEY: the size of the object KEY in LISTING (key<TAB>size); 1 if absent.
offsite_size() {
  local k s
  while IFS=$'\t' read -r k s; do
    if [[ "$k" == "$2" ]]; then
      printf '%s\n' "$s"
      return 0
    fi
  done <"$1"
  return 1
}

# mark_offsite DIR URL: record on the volume that the set in DIR is offsite at URL, so that
# retention may delete it (see OFFSITE_MARK). Not being able to write it only keeps the set longer.
mark_offsite() {
  printf '{"url":%s,"marked_at":"%s"}\n' "$(json_string "$2")" "$(utc_now)" \
    >"$1/$OFFSITE_MARK" 2>/dev/null ||
    warn "could not mark $1 as offsite: retention keeps it until a later upload marks it"
}

# upload_set DB ID: copy one set; adds to the totals.
upload_set() {
  local db="$1" id="$2" dir="$BACKUP_DIR/$1/$2" key="$S3_BASE$1/$2/"
  local url="s3://$S3_BUCKET/$key" work="$PRIVATE_TMP/$1.$2" pending_bytes=0 n=0 path size
  mkdir -p "$work"
  local_sizes "$dir" "$work/local"
  offsite_mismatches "$work/local" "$DB_LISTING" "$key" >"$work/pending"
  while IFS=$'\t' read -r path size; do
    n=$((n + 1))
    pending_bytes=$((pending_bytes + size))
  done <"$work/pending"

  if ((n > 0)); then
    log "upload $db/$id: $n file(s), $pending_bytes bytes to $url"
    # --size-only: a file already offsite with the same size is not sent again (resume).
    s3_aws s3 sync "$dir" "$url" --exclude manifest.json --exclude "$OFFSITE_MARK" \
      --size-only --only-show-errors \
      ${SSE_ARGS[@]+"${SSE_ARGS[@]}"} >&2 || s3_fail "uploading $db/$id"
  else
    log "upload $db/$id: every file already offsite, only the manifest is missing"
  fi

  s3_list "$key" "$work/after"
  offsite_mismatches "$work/local" "$work/after" "$key" >"$work/still"
  if [[ -s "$work/still" ]]; then
    IFS=$'\t' read -r path size <"$work/still"
    die "$EX_STEP_FAILED" "after the upload of $db/$id, $url$path is missing or not $size bytes" \
      "re-run the upload (files already offsite with the right size are not sent again)"
  fi

  # Last: from now on the set counts offsite.
  s3_aws s3 cp "$dir/manifest.json" "${url}manifest.json" --only-show-errors \
    ${SSE_ARGS[@]+"${SSE_ARGS[@]}"} >&2 || s3_fail "uploading the manifest of $db/$id"
  # A PUT that succeeded is stored whole: the manifest needs no listing of its own.
  size="$(stat -c %s -- "$dir/manifest.json")"

  mark_offsite "$dir" "$url"
  SETS_UPLOADED=$((SETS_UPLOADED + 1))
  FILES_UPLOADED=$((FILES_UPLOADED + n + 1))
  BYTES_UPLOADED=$((BYTES_UPLOADED + pending_bytes + size))
  UPLOADED_IDS+=("$db/$id")
  log "upload $db/$id: done, manifest last"
}

# upload_database DB: every complete, verified set of DB not yet offsite, newest first (the
# newest is what a disaster recovery needs soonest).
upload_database() {
  local db="$1" id
  local -a ids=()
  while IFS= read -r id; do
    if set_is_verified "$BACKUP_DIR/$db/$id"; then
      ids=("$id" ${ids[@]+"${ids[@]}"})
    else
      log "upload $db/$id: not uploaded, its manifest is missing or does not say verified"
    fi
  done < <(set_ids "$BACKUP_DIR/$db")
  if ((${#ids[@]} == 0)); then
    log "upload $db: no complete verified set in $BACKUP_DIR/$db"
    return 0
  fi
  DB_LISTING="$PRIVATE_TMP/$db.listing"
  s3_list "$S3_BASE$db/" "$DB_LISTING"
  for id in "${ids[@]}"; do
    if offsite_size "$DB_LISTING" "$S3_BASE$db/$id/manifest.json" >/dev/null; then
      log "upload $db/$id: already offsite"
      [[ -f "$BACKUP_DIR/$db/$id/$OFFSITE_MARK" ]] ||
        mark_offsite "$BACKUP_DIR/$db/$id" "s3://$S3_BUCKET/$S3_BASE$db/$id/"
      SETS_SKIPPED=$((SETS_SKIPPED + 1))
      continue
    fi
    # A set that rotted on the volume since its backup must not go offsite marked verified.
    if ! check_manifest_files "$BACKUP_DIR/$db/$id" >"$PRIVATE_TMP/sums.out" 2>&1 ||
      ! check_sums "$BACKUP_DIR/$db/$id" >"$PRIVATE_TMP/sums.out" 2>&1; then
      log "ERROR: upload $db/$id: not uploaded, it fails its checksums on the volume ($(head -n 1 "$PRIVATE_TMP/sums.out"))"
      set_aside "$db" "$id"
      CORRUPT_IDS+=("$db/$id")
      continue
    fi
    upload_set "$db" "$id"
  done
}

# set_aside DB ID: rename a set that fails its checksums to <id>.corrupt, under the database's
# lock (never under a running backup or restore): no longer a set, it is not restored, counted,
# retried by every later upload or kept by retention as a set never offsite; it stays for a look.
set_aside() {
  local dir="$BACKUP_DIR/$1/$2" fd
  # (The braces keep the 2>/dev/null to the exec: on a bare `exec` it would last for the script.)
  if { exec {fd}>>"$BACKUP_DIR/$1/.lock"; } 2>/dev/null && flock -n "$fd" &&
    mv -T -- "$dir" "$dir.corrupt" 2>/dev/null; then
    log "upload $1/$2: moved aside to $dir.corrupt (remove it once looked at)"
  else
    warn "upload $1/$2: could not move it aside to $dir.corrupt (the database is locked or the volume read-only); the next upload checks it again"
  fi
  [[ -z "${fd:-}" ]] || exec {fd}>&-
}

main() {
  local started db path
  started="$(date +%s)"
  s3_setup
  sse_args
  [[ -d "$BACKUP_DIR" ]] ||
    die "$EX_NOT_FOUND" "the backup volume $BACKUP_DIR does not exist" \
      "mount the backup volume there or set BACKUP_DIR"

  SETS_UPLOADED=0 SETS_SKIPPED=0 FILES_UPLOADED=0 BYTES_UPLOADED=0
  UPLOADED_IDS=() CORRUPT_IDS=()
  local -a databases=()
  db="${DATABASE:-${PGDATABASE:-}}"
  if [[ -n "$db" ]]; then
    require_folder_name DATABASE "$db"
    databases=("$db")
  else
    for path in "$BACKUP_DIR"/*/; do
      [[ -d "$path" ]] && databases+=("$(basename "$path")")
    done
  fi
  for db in ${databases[@]+"${databases[@]}"}; do
    [[ -d "$BACKUP_DIR/$db" ]] || continue
    upload_database "$db"
  done

  if ((${#CORRUPT_IDS[@]} > 0)); then
    die "$EX_CORRUPT" "${CORRUPT_IDS[*]} failed their checksums on the volume and were not uploaded (the other sets were)" \
      "the volume's storage damaged them: check it, take a new backup (pgbackup backup), and remove the <id>.corrupt folders once looked at"
  fi
  local ids_json="" id
  for id in ${UPLOADED_IDS[@]+"${UPLOADED_IDS[@]}"}; do
    ids_json+="${ids_json:+,}$(json_string "$id")"
  done
  log "upload: $SETS_UPLOADED set(s) uploaded, $SETS_SKIPPED already offsite, $BYTES_UPLOADED bytes"
  printf '{"event":"upload","status":"ok","bucket":%s,"prefix":%s,"sets_uploaded":%d,"sets_skipped":%d,"files_uploaded":%d,"bytes":%d,"seconds":%d,"uploaded":[%s]}\n' \
    "$(json_string "$S3_BUCKET")" "$(json_string "${S3_BASE%/}")" "$SETS_UPLOADED" \
    "$SETS_SKIPPED" "$FILES_UPLOADED" "$BYTES_UPLOADED" "$(($(date +%s) - started))" "$ids_json"
}

main "$@"
