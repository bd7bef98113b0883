# shellcheck shell=sh
# The backup service's script (POSIX sh, run by the Postgres image: pg_dump, pg_restore and psql
# are there). The program passes it in BACKUP_SCRIPT; every use is `sh -c "$BACKUP_SCRIPT" backup MODE`:
#
#   loop            back up now if the latest good dump is older than the interval, then every interval
#   once            take one dump now
#   check           the health check: the latest good dump is younger than BACKUP_MAX_AGE_SECONDS
#   list            the good dumps, newest first
#   verify DUMP     its checksum and `pg_restore --list`; exit 1 with the reason if either fails
#   restore DUMP    verify it, then restore it into the database in one transaction
#
# A dump counts only once `pg_restore --list` reads it and its checksum is written beside it; only
# then is it renamed from .partial to <database>-<UTC time>.dump and recorded in LATEST and in the
# table backup_runs (which is left out of the dumps: a restore must not roll back the record of
# the dumps themselves). The newest BACKUP_KEEP dumps are kept.
#
# Connection: PGHOST, PGUSER, PGDATABASE, and PGPASSWORD or PGPASSWORD_FILE (a Swarm secret).
set -u
dir=${BACKUP_DIR:?}
if [ -n "${PGPASSWORD_FILE:-}" ]; then PGPASSWORD=$(cat "$PGPASSWORD_FILE") && export PGPASSWORD; fi

say() { echo "backup: $*"; }
dumps() {  # the good dumps' names, newest first (they sort by time)
  for f in "$dir"/*.dump; do [ -e "$f" ] && basename "$f"; done | sort -r
}
fail() { echo "backup: $*" >&2; return 1; }

verify() {  # verify NAME
  name=$(basename "$1")
  [ -f "$dir/$name" ] || { fail "no dump named $name in $dir"; return 1; }
  [ -f "$dir/$name.sha256" ] || { fail "$name has no checksum ($name.sha256): refused"; return 1; }
  (cd "$dir" && sha256sum -c --status "$name.sha256") || { fail "$name does not match its checksum: refused"; return 1; }
  pg_restore --list "$dir/$name" >/dev/null 2>&1 || { fail "$name is not a dump pg_restore can read: refused"; return 1; }
}

once() {
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  name="$PGDATABASE-$stamp.dump"
  partial="$dir/.$name.partial"
  started=$(date +%s)
  if ! pg_dump --format=custom --exclude-table=backup_runs --exclude-table=backup_runs_id_seq --file="$partial"; then
    rm -f "$partial"
    fail "pg_dump failed; no dump taken"
    return 1
  fi
  if ! pg_restore --list "$partial" >/dev/null; then
    rm -f "$partial"
    fail "the new dump fails pg_restore --list; discarded"
    return 1
  fi
  sum=$(sha256sum "$partial" | cut -d' ' -f1)
  printf '%s  %s\n' "$sum" "$name" >"$dir/$name.sha256"
  mv "$partial" "$dir/$name"
  bytes=$(stat -c %s "$dir/$name")
  took=$(($(date +%s) - started))
  printf '%s %s %s\n' "$name" "$bytes" "$sum" >"$dir/.LATEST.partial" && mv "$dir/.LATEST.partial" "$dir/LATEST"
  psql -q -v ON_ERROR_STOP=1 -c "INSERT INTO backup_runs (file, bytes, sha256, seconds) VALUES ('$name', $bytes, '$sum', $took)" \
    || fail "$name is taken, but could not be recorded in backup_runs"
  # Keep the newest BACKUP_KEEP: the names sort by time.
  dumps | tail -n +$((BACKUP_KEEP + 1)) | while read -r old; do
    rm -f "$dir/$old" "$dir/$old.sha256" && say "deleted $old (keeping $BACKUP_KEEP)"
  done
  say "$name: $bytes bytes, sha256 $sum, in ${took}s"
}

started_at=/tmp/backup-loop-started
age() {  # seconds since the latest good dump; with none yet, since the loop started (or "never")
  if [ -f "$dir/LATEST" ]; then since=$dir/LATEST; elif [ -f "$started_at" ]; then since=$started_at; else
    echo 999999999; return; fi
  echo $(($(date +%s) - $(stat -c %Y "$since")))
}

mode=${1:-loop}
case "$mode" in
  loop)
    trap 'exit 0' TERM INT
    rm -f "$dir"/.*.partial  # what a stop in the middle of a dump left
    wait_for=$((BACKUP_INTERVAL_SECONDS - $(age)))
    touch "$started_at"  # the first dump is not due before an interval from now, if none is overdue
    while :; do
      if [ "$wait_for" -gt 0 ]; then sleep "$wait_for" & wait $!; fi
      if once; then wait_for=$BACKUP_INTERVAL_SECONDS; else wait_for=60; fi  # a failed dump: again soon
    done
    ;;
  once) once ;;
  check)
    a=$(age)
    [ "$a" -le "$BACKUP_MAX_AGE_SECONDS" ] || { fail "the latest good dump is ${a}s old (at most ${BACKUP_MAX_AGE_SECONDS}s)"; exit 1; }
    ;;
  list) dumps ;;
  verify) verify "${2:?verify DUMP}" && say "$(basename "$2") verified" ;;
  restore)
    verify "${2:?restore DUMP}" || exit 1
    # --clean --if-exists: drop what the dump holds before creating it; one transaction: a failed
    # restore leaves the database as it was.
    pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error -d "$PGDATABASE" "$dir/$(basename "$2")" \
      && say "restored $(basename "$2") into $PGDATABASE"
    ;;
  *) fail "unknown mode $mode (loop, once, check, list, verify DUMP, restore DUMP)"; exit 2 ;;
esac
