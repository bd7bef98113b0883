# shellcheck shell=sh
# The backup-offsite service's script (POSIX sh, run by the rclone image). It copies each new good
# dump of the backups volume, with its checksum, to an S3-compatible bucket. The program passes it
# in OFFSITE_SCRIPT; every use is `sh -c "$OFFSITE_SCRIPT" offsite MODE`:
#
#   loop     copy the latest good dump (LATEST) whenever the backup service records a new one;
#            retry with backoff while the bucket cannot be reached
#   once     copy the latest good dump now
#   check    the health check: the latest good dump is in the bucket, or was taken less than
#            OFFSITE_GRACE_SECONDS ago
#   list     the dumps in the bucket, with their sizes
#
# The copy only adds: `--immutable` never overwrites an object, and nothing is ever deleted, so the
# credentials need no delete permission and a compromised host cannot wipe the copies. Keeping
# them for a while is the bucket's lifecycle rule. rclone checks each upload's size and MD5.
#
# The remote is rclone's `offsite`, configured by RCLONE_CONFIG_OFFSITE_* variables; its keys come
# from RCLONE_CONFIG_OFFSITE_{ACCESS_KEY_ID,SECRET_ACCESS_KEY}, or from files named by the same
# names with _FILE appended (secrets as files: read into this process only).
set -u
dir=${BACKUP_DIR:?}
target=${OFFSITE_TARGET:?}
copied=${OFFSITE_STATE:-/tmp/offsite-copied}  # the name of the latest dump known to be in the bucket
# One attempt per copy, giving up on an unreachable bucket in seconds, not minutes (rclone's
# defaults retry for over 7 minutes): the loop tries again, backing off.
export RCLONE_RETRIES=1 RCLONE_LOW_LEVEL_RETRIES=3 RCLONE_CONTIMEOUT=10s

for var in RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY; do
  eval "file=\${${var}_FILE:-}"
  # shellcheck disable=SC2154  # `file` is set by the eval above
  if [ -n "$file" ]; then export "$var=$(cat "$file")"; fi
done

say() { echo "offsite: $*"; }
fail() { echo "offsite: $*" >&2; return 1; }
latest() { [ -f "$dir/LATEST" ] && cut -d' ' -f1 "$dir/LATEST"; }

once() {
  name=$(latest) || { say "no good dump yet"; return 0; }
  # Never ship a dump that changed on this host since it was checked.
  (cd "$dir" && sha256sum -c --status "$name.sha256") || { fail "$name does not match its checksum: not copied"; return 1; }
  if ! rclone copy --immutable --include "$name" --include "$name.sha256" "$dir" "$target"; then
    fail "copying to $target failed"
    return 1
  fi
  # What counts is that the latest dump and its checksum are there, as the bucket lists them.
  there=$(rclone lsf --include "$name" --include "$name.sha256" "$target") || { fail "listing $target failed"; return 1; }
  [ "$(echo "$there" | grep -c .)" = 2 ] || { fail "$name or its checksum is missing from $target after the copy"; return 1; }
  echo "$name" >"$copied.partial" && mv "$copied.partial" "$copied"
  say "$name and its checksum are in $target"
}

mode=${1:-loop}
case "$mode" in
  loop)
    trap 'exit 0' TERM INT
    backoff=${OFFSITE_POLL_SECONDS:-10}
    while :; do
      wait_for=${OFFSITE_POLL_SECONDS:-10}
      name=$(latest || true)
      if [ -n "$name" ] && [ "$name" != "$(cat "$copied" 2>/dev/null)" ]; then
        if once; then
          backoff=${OFFSITE_POLL_SECONDS:-10}
        else
          # The bucket unreachable or refusing: try again, less and less often (at most every 10 min).
          wait_for=$backoff
          backoff=$((backoff * 2 > 600 ? 600 : backoff * 2))
          say "trying again in ${wait_for}s"
        fi
      fi
      sleep "$wait_for" & wait $!
    done
    ;;
  once) once ;;
  check)
    name=$(latest) || exit 0  # nothing to copy yet
    [ "$name" = "$(cat "$copied" 2>/dev/null)" ] && exit 0
    age=$(($(date +%s) - $(stat -c %Y "$dir/LATEST")))
    [ "$age" -le "${OFFSITE_GRACE_SECONDS:?}" ] \
      || { fail "$name, taken ${age}s ago, is not in $target yet (at most ${OFFSITE_GRACE_SECONDS}s)"; exit 1; }
    ;;
  list) rclone lsl --include '*.dump' "$target" | sort -k4 -r ;;
  *) fail "unknown mode $mode (loop, once, check, list)"; exit 2 ;;
esac
