"""The real NWB files live in the repository (tests/data/real_nwb), unchanged, so a fresh clone runs every test."""

from __future__ import annotations

import hashlib
import re

SHA256 = re.compile(r"^\| `(?P<path>dandi/[^`]+)` .*\| `(?P<sha>[0-9a-f]{64})` \| CC-BY-4.0 \|$", re.MULTILINE)


def test_the_real_files_are_in_the_repository_byte_for_byte(shared_data, repo):
    assert shared_data.is_relative_to(repo)
    listed = {m["path"]: m["sha"] for m in SHA256.finditer((shared_data / "README.md").read_text())}
    files = {p.relative_to(shared_data).as_posix() for p in shared_data.rglob("*.nwb")}
    assert set(listed) == files and len(files) == 2
    for path, sha in listed.items():
        assert hashlib.sha256((shared_data / path).read_bytes()).hexdigest() == sha, path
