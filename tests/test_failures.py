"""A failed stage: traceback to its log, one message a person can act on beside it, printed last."""

from __future__ import annotations

import errno
import time
from types import SimpleNamespace

import pytest

from neurofit import cli
from neurofit.errors import failure_notes, format_failures, user_message
from neurofit.neural.nwb import NWBContentError


class Named(list):
    """Snakemake's named lists (input, output, params, wildcards, log) as far as the stages use them."""

    def __init__(self, items=None, **named):
        super().__init__(items if items is not None else named.values())
        self.named = named

    def items(self):
        return self.named.items()


def fake_job(tmp_path, out="out.txt"):
    return SimpleNamespace(log=Named([str(tmp_path / "logs" / "stage" / "x.log")]), input=Named(),
                           output=Named(out=str(tmp_path / out)), params=Named(), wildcards=Named())


def failing_stage(error):
    def stage(out: str) -> None:
        raise error
    return stage


def run_failing(monkeypatch, tmp_path, error, capsys):
    monkeypatch.setitem(cli.STAGES, "boom", failing_stage(error))
    job = fake_job(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.run_from_snakemake("boom", job)
    assert exit_.value.code == 1
    log = tmp_path / "logs" / "stage" / "x.log"
    return log.read_text(), (tmp_path / "logs" / "stage" / "x.log.error").read_text(), capsys.readouterr().err


def test_a_neurofit_error_goes_to_the_note_and_its_traceback_to_the_log_only(monkeypatch, tmp_path, capsys):
    log, note, screen = run_failing(monkeypatch, tmp_path, NWBContentError("f.nwb: no intervals table 'trials' "
                                                                           "(responses.table)"), capsys)
    assert note == "f.nwb: no intervals table 'trials' (responses.table)\n"
    assert "Traceback (most recent call last)" in log and "NWBContentError" in log
    assert "Traceback" not in screen and "no intervals table" not in screen


def test_an_unexpected_error_is_called_a_bug_and_points_at_the_log(monkeypatch, tmp_path, capsys):
    _, note, _ = run_failing(monkeypatch, tmp_path, KeyError("layer"), capsys)
    assert note.startswith("stage boom failed with an unexpected KeyError: 'layer'")
    assert "x.log" in note and "bug" in note


def test_disk_full_is_said_plainly(monkeypatch, tmp_path, capsys):
    buried = OSError("Can't write data (file write failed: time = Fri, errno = 28, error message = 'No space left "
                     "on device')")  # how h5py reports it: no errno attribute
    _, note, _ = run_failing(monkeypatch, tmp_path, buried, capsys)
    assert note.startswith(f"disk full: no space left on the device while writing {tmp_path / 'out.txt'} (")
    assert "MB free now" in note and "run the same command again" in note
    plain = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "big.nc"))
    assert user_message(plain).startswith(f"disk full: no space left on the device while writing {tmp_path}/big.nc")
    assert user_message(ValueError("x")) is None


def test_a_stale_note_is_removed_when_the_stage_runs_again(monkeypatch, tmp_path):
    note = tmp_path / "logs" / "stage" / "x.log.error"
    note.parent.mkdir(parents=True)
    note.write_text("old failure\n")
    monkeypatch.setitem(cli.STAGES, "fine", lambda out: None)
    cli.run_from_snakemake("fine", fake_job(tmp_path))
    assert not note.exists()


def test_notes_of_this_run_only_are_collected(tmp_path):
    old = tmp_path / "logs" / "a" / "old.log.error"
    old.parent.mkdir(parents=True)
    old.write_text("from yesterday\n")
    since = time.time() + 5  # the old note predates the run
    new = tmp_path / "logs" / "b" / "new.log.error"
    new.parent.mkdir(parents=True)
    new.write_text("the message\n")
    import os
    os.utime(new, (since + 1, since + 1))
    notes = failure_notes(tmp_path / "logs", since)
    assert notes == [(tmp_path / "logs" / "b" / "new.log", "the message")]
    assert format_failures(notes).splitlines()[-1] == "the message"


def test_the_command_line_prints_one_message_last(tmp_path, capsys):
    text = tmp_path / "page.nwb"
    text.write_text("<html></html>")
    assert cli.main(["inspect", str(text)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"neurofit inspect: error: {text}: not a readable NWB/HDF5 file")
    assert not any("Traceback" in line for line in err)


def test_check_names_the_line_of_a_yaml_syntax_error(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("datasets:\n  sim: {source: simulated\nmodels:\n  m: {}\n")
    assert cli.main(["check", str(config)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"neurofit check: error: {config}, line 3, column 7: not valid YAML (while parsing a "
                          f"flow mapping opened at line 2:")
    config.write_text("datasets:\n  ..: {source: simulated}\nmodels:\n  m: {architecture: alexnet_small}\n")
    assert cli.main(["check", str(config)]) == 1
    assert "datasets: '..' does not match" in capsys.readouterr().err


def snakemake_dry_run(repo, workdir, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory",
                           str(workdir), "-n", *args], capture_output=True, text=True, timeout=300)


def test_a_yaml_error_in_the_default_config_names_the_line_last(repo, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("datasets:\n  sim: {source: simulated\nmodels:\n  m: {}\n")
    run = snakemake_dry_run(repo, tmp_path)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("neurofit: config/config.yaml, line 3, column 7: not valid YAML"), run.stderr[-2000:]


def test_schema_errors_are_the_last_lines(repo, tmp_path):
    (tmp_path / "config.yaml").write_text("datasets:\n  ..: {source: simulated}\n"
                                          "models:\n  m: {architecture: alexnet_small, objectiv: supervised}\n")
    run = snakemake_dry_run(repo, tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert lines[-3:] == ["neurofit: invalid config:", "  datasets: '..' does not match '^[A-Za-z0-9][A-Za-z0-9_.-]*$'",
                          "  models.m: Additional properties are not allowed ('objectiv' was unexpected)"], lines[-6:]
