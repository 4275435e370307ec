"""The code hash's cached source segments are exactly ``ast.get_source_segment``'s (so the hashes, and
with them every job's cache, did not change when the per-call splitting of cli.py was cached)."""

from __future__ import annotations

import ast

import pytest

from neurofit import cache


@pytest.mark.parametrize("source", [
    (cache.PACKAGE_DIR / "cli.py").read_text(),
    "x = 1\r\ndef f():\r    return 'é'\n\nclass C:\n    y = f()",  # mixed line endings, no final newline, non-ASCII
])
def test_cached_segments_equal_ast_get_source_segment(source):
    tree = ast.parse(source)
    nodes = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]
    assert nodes
    for node in nodes:
        assert cache._source_segment(source, node) == ast.get_source_segment(source, node)


def test_module_imports_are_read_once_per_source():
    cache._module_imports.cache_clear()
    cache.stage_code_hash("fit")
    first = cache._module_imports.cache_info()
    cache.stage_code_hash("fit")
    assert cache._module_imports.cache_info().misses == first.misses
