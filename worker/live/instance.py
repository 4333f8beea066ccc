"""A unique instance id for a replica that was not given ``--instance-id``.

The transactional id is ``<group>-<instance>``. It must never be shared by two live
replicas: two producers with one id fence each other, and one of them exits 3. It
should, where it can, survive a restart, so the new process fences the old one and
aborts its open transaction at once instead of read_committed readers waiting for the
transaction timeout. Neither the hostname nor the pid tells replicas apart: containers
with host networking share the host's name, and every container's process is pid 1.

Default: ``<hostname>-<slot>-<token>``. The slot is the lowest one whose lock file (in
``$TMPDIR/scoring-worker``) this process can hold: replicas sharing that directory get
distinct slots, and a killed process's lock is released by the kernel. The token is 64
random bits kept in the slot's lock file: a restart that finds the file again (same
host, same directory) gets the same id and fences its predecessor at once; replicas
that cannot see each other's lock files (containers, each with its own /tmp) draw their
own tokens and so never collide. A replica that gets a new id on restart is still
fenced when it comes back as a zombie: its offsets go to the transaction with the
consumer group's generation (KIP-447), which the group coordinator refuses once the
partitions were given to another member, so the zombie's transaction aborts. See
docs/delivery.md "Transactional ids".
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import socket
import tempfile
from pathlib import Path
from typing import IO

MAX_SLOTS = 1024
_TOKEN = re.compile(rb"^[0-9a-f]{16}$")


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "worker"


def _new_token() -> str:
    return secrets.token_hex(8)


def _slot_token(handle: IO[bytes]) -> str:
    """The token kept in a held lock file; a new one is written when there is none."""
    handle.seek(0)
    found = handle.read().strip()
    if _TOKEN.match(found):
        return found.decode()
    token = _new_token()
    handle.seek(0)
    handle.truncate()
    handle.write(token.encode() + b"\n")
    handle.flush()
    os.fsync(handle.fileno())
    return token


def claim_instance_id(group: str, lock_dir: Path | None = None) -> tuple[str, IO[bytes] | None]:
    """``(instance id, open lock file)``; keep the file open for as long as the id is used.

    ``lock_dir`` defaults to ``$TMPDIR/scoring-worker``. When it cannot be used (no
    writable temporary directory at all: a read-only root filesystem without a /tmp
    mount), the id is ``<hostname>-<random token>`` (unique, but new on every start) and
    the file is None. Never raises.
    """
    host = _clean(socket.gethostname())
    try:
        # gettempdir() itself raises FileNotFoundError when no candidate is writable
        directory = lock_dir or Path(tempfile.gettempdir()) / "scoring-worker"
        directory.mkdir(parents=True, exist_ok=True)
        for slot in range(MAX_SLOTS):
            handle = (directory / f"{_clean(group)}.{host}.{slot}.lock").open("a+b")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return f"{host}-{slot}-{_slot_token(handle)}", handle
            except OSError:
                handle.close()
    except OSError:
        pass
    return f"{host}-{_new_token()}", None
