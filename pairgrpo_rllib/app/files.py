"""What the commands write, written so that an interruption never leaves half a file: JSON and text
replaced atomically, checkpoints listed in a manifest so that a half-copied one is never restored,
and the lines a full disk or a kill cut off Tune's per-iteration logs dropped before a resume
appends to them."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_text_atomically(path: Path, text: str) -> None:
    """``text`` at ``path``: written beside it, then renamed over it; on failure (a full disk) the
    old file stays as it was and no temporary file is left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomically(path: Path, data, *, default=None, sort_keys: bool = True) -> None:
    """``data`` as JSON at ``path``, atomically (``default``: as ``json.dumps``'s, for values JSON has
    no form for)."""
    write_text_atomically(path, json.dumps(data, indent=2, sort_keys=sort_keys, default=default) + "\n")


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


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint (None: it is): gone, manifest missing or damaged,
    a file missing or at another size than the manifest's."""
    folder = Path(folder)
    if not folder.is_dir():
        return "it is gone"
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        listed = {str(name): int(size) for name, size in files.items()}
    except FileNotFoundError:
        return f"its {MANIFEST} is missing"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"its {MANIFEST} is damaged"
    for name, size in listed.items():
        f = folder / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, not the {size} of the manifest"
    return None


def checkpoint_complete(folder: Path) -> bool:
    return checkpoint_problem(folder) is None


def complete_checkpoints(trial_dir: Path) -> list[Path]:
    """The ``checkpoint_*`` folders of ``trial_dir`` whose manifest checks out, newest first."""
    found = sorted(Path(trial_dir).glob("checkpoint_*"), key=lambda p: p.name, reverse=True)
    return [c for c in found if c.is_dir() and checkpoint_complete(c)]


def newest_complete_checkpoint(trial_dir: Path) -> Path | None:
    """The highest-numbered ``checkpoint_*`` folder in ``trial_dir`` whose manifest checks out."""
    return next(iter(complete_checkpoints(trial_dir)), None)


LINE_LOGS = ("result.json", "progress.csv")  # Tune appends one line per iteration to each


def drop_cut_lines(exp_dir: Path) -> list[Path]:
    """Truncate every trial's ``result.json`` and ``progress.csv`` below ``exp_dir`` after its last
    whole line (a full disk or a kill can leave one cut; the resumed trial's first line would be
    glued onto it and lost). Returns the files changed."""
    changed = []
    for name in LINE_LOGS:
        for f in Path(exp_dir).rglob(name):
            data = f.read_bytes()
            if data and not data.endswith(b"\n"):
                with f.open("r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
                changed.append(f)
    return changed
