#!/usr/bin/env bash
# verify.sh — check a backup set on the volume without restoring it: manifest present and
# verified, every checksum matches, pg_restore can read the archive. BACKUP_ID (default latest;
# a legacy .sql.gz name gets gzip -t). Postgres image; needs no database connection.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
SCRIPT_DIR="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"
# shellcheck source=pg.sh
source "$SCRIPT_DIR/pg.sh"
# shellcheck source=restore_lib.sh
source "$SCRIPT_DIR/restore_lib.sh"
SUMMARY_EVENT=verify

SOURCE_DATABASE="${SOURCE_DATABASE:-${PGDATABASE:-}}"
require_folder_name PGDATABASE "$SOURCE_DATABASE"
BACKUP_ID="${BACKUP_ID:-latest}"
DB_DIR="$BACKUP_DIR/$SOURCE_DATABASE"
require_tool pg_restore "$SHA256_TOOL" flock gzip
init_private_tmp
# A backup's retention may be deleting a set, or a fetch writing one: checked in between, a set
# would look corrupt. 75 while one runs.
if [[ -d "$DB_DIR" ]]; then lock_database_dir "$DB_DIR"; fi

resolve_backup
verify_source

if [[ "$SOURCE_KIND" == legacy ]]; then
  printf '{"event":"verify","database":%s,"id":%s,"kind":"legacy","status":"verified","bytes":%d}\n' \
    "$(json_string "$SOURCE_DATABASE")" "$(json_string "$BACKUP_ID")" "$(stat -c %s -- "$SOURCE_PATH")"
  exit 0
fi
printf '{"event":"verify","database":%s,"id":"%s","kind":"set","status":"verified","bytes":%s,"files":%d,"toc_entries":%d,"archive_version":"%s","finished_at":"%s"}\n' \
  "$(json_string "$SOURCE_DATABASE")" "$ID" "$(manifest_field "$MANIFEST" total_bytes || echo 0)" \
  "$(wc -l <"$SOURCE_PATH/SHA256SUMS")" "$(toc_entry_count "$PRIVATE_TMP/toc.list")" \
  "$(archive_version_of "$PRIVATE_TMP/toc.list")" "$(manifest_field "$MANIFEST" finished_at || true)"
