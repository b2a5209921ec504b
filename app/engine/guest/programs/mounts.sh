# What is mounted where in the guest, and the mounts that depend on it
# (guest/queries.ts). Run as: sh -c PROGRAM mounts COMMAND PATH ESCAPED ARG...
# Every value is a positional parameter, never program text. ESCAPED is
# PATH as the mount tables write it (space, tab, newline and backslash
# octal-escaped; the engine escapes it). The tables, not stat: stat of a
# dead FUSE mount hangs.

# mounted ESCAPED TYPE SOURCE: something of TYPE (empty: any; fuse: every
# fuse type) from SOURCE (empty: any) is mounted at the path. Values go
# through the environment: awk -v would expand the \040 escapes itself.
mounted() {
  P=$1 T=$2 S=$3 awk '
    $2 == ENVIRON["P"] && (ENVIRON["S"] == "" || $1 == ENVIRON["S"]) &&
    (ENVIRON["T"] == "" || $3 == ENVIRON["T"] || (ENVIRON["T"] == "fuse" && $3 ~ /^fuse/)) { f = 1 }
    END { exit !f }' /proc/mounts
}

# top_root ESCAPED: the root, inside its file system, of the top mount at the
# path (for a bind mount: the folder bound there); empty when none.
top_root() {
  P=$1 awk '$5 == ENVIRON["P"] { r = $4 } END { print r }' /proc/self/mountinfo
}

cmd=$1
shift
case $cmd in
  is-mounted) # PATH ESCAPED TYPE SOURCE
    mounted "$2" "$3" "$4"
    ;;
  mount-virtiofs) # PATH ESCAPED TAG ro|rw: already mounted (a reattach) is kept
    mounted "$2" virtiofs "$3" && exit 0
    # A reverse sshfs mount left at this path by an earlier engine.
    fusermount3 -u -z "$1" 2>/dev/null
    if [ "$4" = ro ]; then
      mkdir -p "$1" && mount -t virtiofs -o ro "$3" "$1"
    else
      mkdir -p "$1" && mount -t virtiofs "$3" "$1"
    fi
    ;;
  unmount-virtiofs) # PATH ESCAPED TAG: only that device at exactly that path
    mounted "$2" virtiofs "$3" && umount -l "$1"
    ;;
  bind) # PATH ESCAPED FOLDER MARK: unless the top mount's root ends in MARK (exit 3: no PATH)
    case "$(top_root "$2")" in *"$4") exit 0 ;; esac
    [ -d "$1" ] || exit 3
    mount --bind "$3" "$1"
    ;;
  unbind) # PATH ESCAPED MARK: only when the top mount's root ends in MARK
    case "$(top_root "$2")" in *"$3") umount -l "$1" ;; esac
    ;;
  *)
    echo "mounts: unknown command $cmd" >&2
    exit 2
    ;;
esac
