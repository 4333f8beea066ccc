"""A stable instance id for a replica that was not given ``--instance-id``.

The transactional id is ``<group>-<instance>``. It must be unique among live replicas
(two producers with one id fence each other) and should survive a restart (so the new
process fences the old one and aborts its open transaction at once, instead of readers
waiting for the transaction timeout). Default: ``<hostname>-<slot>``, where the slot is
the lowest one whose lock file this process can hold: replicas on one host get distinct
slots, a restarted replica gets its old slot back, and a killed process's lock is
released by the kernel. In a container the hostname alone already tells replicas apart.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import IO

MAX_SLOTS = 1024


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "worker"


def claim_instance_id(group: str, lock_dir: Path | None = None) -> tuple[str, IO[bytes] | None]:
    """``(instance id, open lock file)``; keep the file open for as long as the id is used."""
    host = _clean(socket.gethostname())
    directory = lock_dir or Path(tempfile.gettempdir()) / "scoring-worker"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return f"{host}-{os.getpid()}", None
    for slot in range(MAX_SLOTS):
        handle = (directory / f"{_clean(group)}.{host}.{slot}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return f"{host}-{slot}", handle
    return f"{host}-{os.getpid()}", None
