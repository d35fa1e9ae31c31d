"""What the commands write, written so that an interruption never leaves half a file: JSON replaced
atomically, and checkpoints listed in a manifest so that a half-copied one is never restored."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomically(path: Path, data, *, default=None, sort_keys: bool = True) -> None:
    """``data`` as JSON at ``path``: written beside it, then renamed over it (``default``: as
    ``json.dumps``'s, for values JSON has no form for)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys, default=default) + "\n")
    os.replace(tmp, path)


MANIFEST = "pairgrpo_manifest.json"


def write_manifest(folder: Path) -> None:
    """List every file of a checkpoint with its size (written last, so a copy is complete only when
    the manifest and every file it names are there at their sizes)."""
    files = {
        str(f.relative_to(folder)): f.stat().st_size
        for f in sorted(folder.rglob("*"))
        if f.is_file() and f.name != MANIFEST
    }
    write_json_atomically(folder / MANIFEST, {"files": files})


def checkpoint_complete(folder: Path) -> bool:
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for name, size in files.items():
        f = folder / name
        if not f.is_file() or f.stat().st_size != size:
            return False
    return True


def newest_complete_checkpoint(trial_dir: Path) -> Path | None:
    """The highest-numbered ``checkpoint_*`` folder in ``trial_dir`` whose manifest checks out."""
    found = sorted(trial_dir.glob("checkpoint_*"), key=lambda p: p.name, reverse=True)
    return next((c for c in found if c.is_dir() and checkpoint_complete(c)), None)
