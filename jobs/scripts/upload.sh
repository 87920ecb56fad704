#!/usr/bin/env bash
# Copy the complete backup sets of the volume to s3://$S3_BUCKET/$S3_PREFIX/<db>/<id>/.
#
# A set is copied only when it is complete and verified on the volume, and only when its manifest is
# not offsite yet. Every file but the manifest goes first (a file already offsite with the same size
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

# -- offsite helpers (shared with fetch.sh, same code) -----------------------------------------------
# s3_setup: check the offsite settings and give the aws CLI a writable HOME (its cache lives there;
# the container's root filesystem and HOME may be read-only).
s3_setup() {
  require_tool aws
  [[ -n "${S3_BUCKET:-}" ]] ||
    die "$EX_CONFIG" "S3_BUCKET is not set" "set S3_BUCKET to the offsite bucket's name"
  init_private_tmp
  if [[ -z "${HOME:-}" || ! -d "$HOME" || ! -w "$HOME" ]]; then
    mkdir -p "$PRIVATE_TMP/home"
    export HOME="$PRIVATE_TMP/home"
  fi
  AWS_ERR="$PRIVATE_TMP/aws.err"
  # aws v2 pages its output through `less` when it thinks someone reads it: never here.
  export AWS_PAGER=""
  # <prefix>/ with no leading or doubled slash, or nothing when S3_PREFIX is empty.
  local prefix="${S3_PREFIX:-}"
  while [[ "$prefix" == /* ]]; do prefix="${prefix#/}"; done
  while [[ "$prefix" == */ ]]; do prefix="${prefix%/}"; done
  S3_BASE="${prefix:+$prefix/}"
}

# s3_aws ARGS...: the aws CLI with the endpoint of the contract, its stderr kept for s3_fail.
s3_aws() {
  if [[ -n "${S3_ENDPOINT_URL:-}" ]]; then
    run_child aws --endpoint-url "$S3_ENDPOINT_URL" "$@" 2>"$AWS_ERR"
  else
    run_child aws "$@" 2>"$AWS_ERR"
  fi
}

# s3_fail WHAT: turn the aws error just captured into the one error line, and exit.
s3_fail() {
  local what="$1" detail where="${S3_ENDPOINT_URL:-AWS S3}"
  detail="$(grep -v '^[[:space:]]*$' "$AWS_ERR" 2>/dev/null | tail -n 1 | cut -c 1-300 || true)"
  [[ -z "$detail" ]] || log "aws: $detail"
  case "$detail" in
    *"Could not connect"* | *"Connect timeout"* | *"Connection was closed"* | *"Read timeout"* | \
      *"Connection reset"* | *"Name or service not known"* | *"Temporary failure in name"*)
      die "$EX_UNREACHABLE" "cannot reach $where while $what" \
        "check the network path to the object store and S3_ENDPOINT_URL, then re-run" ;;
    *NoSuchBucket*)
      die "$EX_NOT_FOUND" "bucket '$S3_BUCKET' does not exist ($what)" \
        "check S3_BUCKET (and S3_ENDPOINT_URL) in the stack config" ;;
    *AccessDenied* | *InvalidAccessKeyId* | *SignatureDoesNotMatch* | *"locate credentials"* | \
      *ExpiredToken* | *Forbidden* | *"(403)"* | *KMS*)
      die "$EX_DENIED" "S3 refused access while $what" \
        "check the credentials (IRSA role or access key Secret) and their S3/KMS permissions" ;;
    *"Skipping file"* | *"Permission denied"*)
      die "$EX_STEP_FAILED" "a local file vanished or cannot be read while $what" \
        "check the backup volume (was the set deleted or changed meanwhile?), then re-run" ;;
    *"No space left"*)
      die "$EX_NO_SPACE" "the disk filled up while $what" "free space or grow the volume" ;;
    *)
      die "$EX_STEP_FAILED" "aws failed while $what" "see the aws message above, then re-run" ;;
  esac
}

# s3_list PREFIX OUT: "key<TAB>size" of every object under PREFIX into the file OUT.
s3_list() {
  s3_aws s3api list-objects-v2 --bucket "$S3_BUCKET" --prefix "$1" \
    --query 'Contents[].[Key,Size]' --output text >"$2.raw" ||
    s3_fail "listing s3://$S3_BUCKET/$1"
  # An empty page prints "None".
  grep -v '^None$' "$2.raw" >"$2" || true
}

# require_folder_name WHAT NAME: a database name that is safe as a folder and key name (the same
# rule as pg.sh's require_plain_db_name, which the aws-cli image does not load).
require_folder_name() {
  [[ "$2" != */* && "$2" != .* && "$2" != *$'\n'* && ${#2} -le 63 ]] ||
    die "$EX_USAGE" "$1 '$2' cannot be used as a folder name" \
      "use a database name without '/', newlines or a leading dot, at most 63 bytes"
}

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
      if [[ -f "$path" ]]; then files+=("$path"); fi
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
    s3_aws s3 sync "$dir" "$url" --exclude manifest.json --size-only --only-show-errors \
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
      SETS_SKIPPED=$((SETS_SKIPPED + 1))
      continue
    fi
    upload_set "$db" "$id"
  done
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
  UPLOADED_IDS=()
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
