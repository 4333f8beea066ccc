# shellcheck shell=bash
# Sourced by scripts/install-podman, container-base and container-test (from the repository
# root): points podman at the project's own configuration and storage, never /etc or
# /var/lib/containers, so a fresh clone starts cold and nothing depends on the machine's state.
#   CONTAINERS_CONF           .cache/container/containers.conf (written by install-podman)
#   CONTAINERS_STORAGE_CONF   .cache/container/storage.conf (written by install-podman)
#   CONTAINER_STORAGE         where images and layers live (.cache/container/storage);
#                             `make clean` removes it with the rest of .cache.
# The run-time state (mounts, locks; podman's runroot and tmp_dir) goes to
# ${XDG_RUNTIME_DIR:-/run}/scoring-worker/<hash of CONTAINER_STORAGE>: short paths, and
# cleared with /run on a reboot as podman expects.
CONTAINER_DIR="$PWD/.cache/container"
CONTAINER_STORAGE="${CONTAINER_STORAGE:-$CONTAINER_DIR/storage}"
CONTAINER_RUNROOT="${XDG_RUNTIME_DIR:-/run}/scoring-worker/$(printf %s "$CONTAINER_STORAGE" | sha256sum | cut -c1-12)"
export CONTAINERS_CONF="$CONTAINER_DIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$CONTAINER_DIR/storage.conf"

# retry N WHAT COMMAND...: run COMMAND up to N times (network steps: apt, debootstrap,
# downloads), 10 s apart; after the last failure one line names WHAT and the exit code.
retry() {
  local tries="$1" what="$2" n=1 rc=0
  shift 2
  while true; do
    "$@" && return 0
    rc=$?
    if ((n >= tries)); then
      echo "$what failed $n times (last exit $rc): giving up" >&2
      return "$rc"
    fi
    echo "$what failed (exit $rc), attempt $n of $tries: retrying in 10 s" >&2
    n=$((n + 1))
    sleep 10
  done
}
