#!/usr/bin/env bash
# Run one command on every host of a Cloud TPU VM slice, as a multi-host xlt job.
#
#   tools/tpu_launch.sh TPU_NAME ZONE [--project P] [--remote_dir D] [--sync] [--dry-run] -- COMMAND [ARG ...]
#
# e.g. tools/tpu_launch.sh my-v4-128 us-central2-b --sync -- \
#        .venv/bin/python -m xlt.train --gin_file=experiments/scale/polylm_13b_v4-128.gin \
#        --gin.MODEL_DIR="'/mnt/gcs/bucket/polylm_13b'"
#
# Every worker runs `cd D && XLT_DISTRIBUTED=1 COMMAND` through
# `gcloud compute tpus tpu-vm ssh TPU_NAME --zone ZONE --worker=all`; XLT_DISTRIBUTED=1 makes
# xlt.partitioning.initialize_distributed() call jax.distributed.initialize(), which finds its peers on a
# Cloud TPU slice by itself. A multi-host job needs the same command on all hosts at once; gcloud starts
# them in parallel and returns when all have finished.
#
#   --project P     gcloud project (default: gcloud's configured one)
#   --remote_dir D  the repository's directory on the workers (default: xlt, under the remote home)
#   --sync          first copy this checkout (without .venv, .git, runs/, results/) to D on all workers:
#                   a tarball through `tpu-vm scp --worker=all`, unpacked over D by `tpu-vm ssh --worker=all`
#   --dry-run       print the gcloud commands instead of running them
#
# Bad arguments print a usage line and exit with status 2.
set -euo pipefail

usage() {
    echo "usage: tools/tpu_launch.sh TPU_NAME ZONE [--project P] [--remote_dir D] [--sync] [--dry-run] -- COMMAND [ARG ...]" >&2
    [[ $# -gt 0 ]] && echo "tpu_launch: error: $1" >&2
    exit 2
}

[[ $# -ge 2 ]] || usage "TPU_NAME and ZONE are required"
tpu_name=$1 zone=$2
shift 2
[[ -n $tpu_name && $tpu_name != -* ]] || usage "TPU_NAME must come first, got '$tpu_name'"
[[ -n $zone && $zone != -* ]] || usage "ZONE must come second, got '$zone'"

project="" remote_dir="xlt" sync=0 dry_run=0 have_command=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --project) [[ $# -ge 2 && -n $2 ]] || usage "--project needs a value"; project=$2; shift 2 ;;
        --project=*) project=${1#*=}; [[ -n $project ]] || usage "--project needs a value"; shift ;;
        --remote_dir) [[ $# -ge 2 && -n $2 ]] || usage "--remote_dir needs a value"; remote_dir=$2; shift 2 ;;
        --remote_dir=*) remote_dir=${1#*=}; [[ -n $remote_dir ]] || usage "--remote_dir needs a value"; shift ;;
        --sync) sync=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        --) shift; have_command=1; break ;;
        *) usage "unknown option '$1' (the command goes after --)" ;;
    esac
done
[[ $have_command -eq 1 ]] || usage "no '--' before the command"
[[ $# -gt 0 ]] || usage "no command after --"

# Shell-quote one word: as is when it needs nothing, in single quotes when it has none, else bash's %q.
quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then
        printf '%s' "$1"
    elif [[ $1 != *"'"* ]]; then
        printf "'%s'" "$1"
    else
        printf '%q' "$1"
    fi
}

# The command as one string for the remote shell, each argument quoted as given here.
command_str=""
for arg in "$@"; do
    command_str+=" $(quote "$arg")"
done
remote_cmd="cd $(quote "$remote_dir") && XLT_DISTRIBUTED=1${command_str}"

gcloud_args=(--zone "$zone" --worker=all)
[[ -n $project ]] && gcloud_args+=(--project "$project")

run() {
    if [[ $dry_run -eq 1 ]]; then
        local line="" word
        for word in "$@"; do
            line+="${line:+ }$(quote "$word")"
        done
        echo "$line"
    else
        "$@"
    fi
}

if [[ $sync -eq 1 ]]; then
    repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    tarball="/tmp/xlt-sync-$tpu_name.tar.gz"
    run tar -C "$repo_root" --exclude=./.venv --exclude=./.git --exclude=./runs --exclude=./results \
        --exclude='__pycache__' -czf "$tarball" .
    run gcloud compute tpus tpu-vm scp "$tarball" "$tpu_name:$tarball" "${gcloud_args[@]}"
    unpack="mkdir -p $(quote "$remote_dir") && tar -xzf $(quote "$tarball") -C $(quote "$remote_dir")"
    run gcloud compute tpus tpu-vm ssh "$tpu_name" "${gcloud_args[@]}" --command "$unpack"
    run rm -f "$tarball"
fi
run gcloud compute tpus tpu-vm ssh "$tpu_name" "${gcloud_args[@]}" --command "$remote_cmd"
