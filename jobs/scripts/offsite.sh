#!/usr/bin/env bash
# Offsite helpers shared by upload.sh and fetch.sh (sourced after common.sh): settings checks, the
# aws CLI with the contract's endpoint, one error line per aws failure, listings without GetObject.
# Runs in amazon/aws-cli (v2) and locally (v1): bash, coreutils and `aws` only.

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
  # shellcheck disable=SC2034  # read by the scripts that source this file
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
