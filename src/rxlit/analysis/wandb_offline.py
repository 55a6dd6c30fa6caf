"""Read a W&B offline run folder (``wandb/offline-run-*``) without a server.

The ``.wandb`` file is a LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then
32 KiB blocks of records, each with a 7-byte header (crc32c, little-endian length, type:
1 full, 2 first, 3 middle, 4 last) followed by a protobuf ``Record`` payload.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK = 32768
HEADER = 7


def _payloads(data: bytes):
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # block trailer padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:
            pos += room
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""


def _item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(run_dir: str | Path, expect: set[str] | frozenset = frozenset(), timeout: float = 60.0) -> dict:
    """History rows, summary and config of one offline run folder.

    ``expect``: history keys to wait for (up to ``timeout`` seconds): ``wandb.finish()`` can return
    before W&B's service process has flushed the ``.wandb`` file (seen on a loaded machine).
    """
    deadline = time.monotonic() + timeout
    while True:
        run = _read_once(run_dir)
        logged = {key for row in run["history"] for key in row}
        if expect <= logged or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def _read_once(run_dir: str | Path) -> dict:
    from wandb.proto import wandb_internal_pb2 as pb

    files = list(Path(run_dir).glob("*.wandb"))
    if not files:
        raise FileNotFoundError(f"no .wandb file in {run_dir}: is it a W&B offline run folder?")
    history, summary, config = [], {}, {}
    for payload in _payloads(files[0].read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({_item_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            summary.update({_item_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "config":
            config.update({_item_key(i): json.loads(i.value_json) for i in record.config.update})
    return {"history": history, "summary": summary, "config": config}


def find_offline_runs(root: str | Path) -> list[Path]:
    return sorted(Path(root).rglob("offline-run-*"))
