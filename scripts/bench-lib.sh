# Sourced by the bench scripts: starting berth and talking to its API.

# Starts `$1 serve` (BERTH_* set by the caller), its output in $2/out and
# its log appended to $2/log; sets `pid` and `base` (the API's address).
start_berth() {
    "$1" serve >"$2/out" 2>>"$2/log" &
    pid=$!
    for _ in $(seq 1 200); do
        base="$(sed -n 's/^berth listening on //p' "$2/out")"
        [[ -n "$base" ]] && return 0
        sleep 0.05
    done
    echo "$(basename "$0"): berth did not start" >&2
    exit 1
}

# curl against the API with the bench's `token`.
api() { curl -s -H "Authorization: Bearer $token" "$@"; }

# Mounts the bench's `backend` in cache mode $1 at $2 (under the mount
# root), of its sub-path $3 if given; prints the mount path, or stops the
# bench when the mount is refused.
mount_berth() {
    local answer
    answer="$(api -X POST "$base/api/v1/mounts" -d "{\"backend_id\": \"$backend\", \"mount_path\": \"$2\", \"remote_path\": \"${3:-}\", \"vfs_config\": {\"cache_mode\": \"$1\"}}")"
    [[ $answer == *'"mount_path"'* ]] || { echo "$(basename "$0"): mount failed: $answer" >&2; exit 1; }
    json_field mount_path <<<"$answer"
}

# The string field $1 of the JSON answer on stdin (its last occurrence).
json_field() { sed "s/.*\"$1\":\"\([^\"]*\)\".*/\1/"; }
