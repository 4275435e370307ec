"""Errors a person can act on: which failures get a plain message (neurofit's own errors, a full disk),
the note a failed stage leaves beside its log, and the summary printed as the last thing on screen
when a Snakemake run fails (the ``onerror:`` handler of the Snakefile).

A failed stage writes its traceback to its job log and the one-paragraph message (what, which key or
file, the fix) to ``<log>.error`` (:func:`neurofit.paths.error_note`); the run's ``onerror`` handler
collects the notes written during this run and prints them after Snakemake's own closing lines.
"""

from __future__ import annotations

import atexit
import errno
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from neurofit.paths import error_note

ERROR_NOTE_SUFFIX = error_note("")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC, also when HDF5 buries it in its own message (errno lost, "No space left on device" kept)."""
    return any((isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e)
               for e in _chain(error))


def disk_full_message(error: BaseException, outputs: list[str]) -> str:
    filename = next((e.filename for e in _chain(error) if isinstance(e, OSError) and e.filename), None)
    where = str(filename) if filename else ", ".join(outputs[:3]) or "the outputs"
    folder = Path(filename or (outputs[0] if outputs else ".")).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:.0f} MB free now"
    except OSError:
        free = "free space unknown"
    return (f"disk full: no space left on the device while writing {where} ({free} on the disk of {folder}). "
            f"Free space there (or point results:/resources: in the config at a bigger disk) and run the same "
            f"command again: finished outputs are kept, the unfinished ones are redone")


def user_message(error: BaseException, outputs: list[str] | None = None) -> str | None:
    """The message for a person, or None for an unexpected error (a bug: the traceback matters)."""
    if is_disk_full(error):
        return disk_full_message(error, list(outputs or []))
    if type(error).__module__.split(".")[0] == "neurofit":
        return str(error)
    return None


# -- the run's summary (Snakefile onerror) -----------------------------------------------------
def failure_notes(logs_dir: str | Path, since: float) -> list[tuple[Path, str]]:
    """(log, message) of the stages that failed since ``since`` (a time.time()), oldest first."""
    root = Path(logs_dir)
    if not root.is_dir():
        return []
    notes = []
    for note in root.rglob(f"*{ERROR_NOTE_SUFFIX}"):
        try:
            stat = note.stat()
            if stat.st_mtime >= since - 1:
                notes.append((stat.st_mtime, note.with_name(note.name[: -len(ERROR_NOTE_SUFFIX)]),
                              note.read_text().strip()))
        except OSError:
            continue
    return [(log, text) for _, log, text in sorted(notes)]


def format_failures(notes: list[tuple[Path, str]]) -> str:
    lines = [f"neurofit: {len(notes)} job(s) failed; tracebacks are in their logs."]
    for log, text in notes:
        lines += ["", f"{log}:", text]
    return "\n".join(lines)


def report_failures_at_exit(logs_dir: str | Path, since: float) -> None:
    """Print the failed stages' messages when the process exits, after Snakemake's closing lines
    ("At least one job did not complete successfully"), so that they are the last thing on screen."""
    notes = failure_notes(logs_dir, since)
    if notes:
        text = format_failures(notes)
        atexit.register(lambda: print("\n" + text, file=sys.stderr, flush=True))
