"""One script for every rule: each rule names its stage (a neurofit.cli stage) and hashes that stage's code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neurofit import cli
from neurofit.cache import stage_code_hash, stage_params

RULES = Path(__file__).resolve().parents[1] / "workflow" / "rules"


def _rules() -> dict[str, str]:
    """``{rule name or file:index: rule text}`` of every rule with a ``script:`` in workflow/rules."""
    found = {}
    for path in sorted(RULES.glob("*.smk")):
        for i, block in enumerate(re.split(r"\n(?=\s*rule[\s:])", path.read_text())):
            if "script:" in block:
                name = re.match(r"\s*rule\s*(\w*):", block)
                found[(name and name[1]) or f"{path.name}:{i}"] = block
    return found


def test_every_rule_runs_the_one_script_with_a_stage_and_its_code_hash():
    rules = _rules()
    assert len(rules) >= 25 and sorted(p.name for p in (RULES.parent / "scripts").iterdir()) == ["stage.py"]
    for name, block in rules.items():
        assert re.search(r'script:\s*\n\s*"\.\./scripts/stage\.py"', block), name
        stage = re.search(r'\n\s*\*\*stage_params\("(\w+)"\),', block)  # the stage named once
        assert stage and stage[1] in cli.STAGES, name
    assert stage_params("fit") == {"stage": "fit", "code": stage_code_hash("fit")}


def test_an_unknown_stage_name_is_refused_with_the_known_ones():
    with pytest.raises(KeyError, match=r"no stage 'fitt' in neurofit.cli .*'fit'"):
        cli.run_from_snakemake("fitt", object())


def test_the_script_spares_shutdown_only_after_the_stage_succeeded():
    shim = (RULES.parent / "scripts" / "stage.py").read_text()
    assert shim.index("run_from_snakemake(snakemake.params.stage") < shim.index("spare_shutdown()")


def test_spare_shutdown_runs_pending_finalizers_and_logging_still_flushes(tmp_path):
    """Garbage the stage left (here a cycle with a finalizer) is collected as at any exit, and the
    log file gets its last line (logging's atexit flush), though shutdown no longer traces the heap."""
    import subprocess
    import sys

    log, mark = tmp_path / "job.log", tmp_path / "finalized"
    probe = (f"import gc, logging\nfrom neurofit.cli import spare_shutdown\n"
             f"logging.basicConfig(level=logging.INFO, handlers=[logging.FileHandler({str(log)!r})], force=True)\n"
             f"class Cycle:\n    def __del__(self):\n        open({str(mark)!r}, 'w').write('yes')\n"
             "a = Cycle()\na.me = a\ndel a\nlogging.getLogger('job').info('last line')\n"
             "spare_shutdown()\nprint(gc.get_freeze_count() > 0)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
    assert mark.read_text() == "yes" and log.read_text().strip().endswith("last line")
