"""The command line: stability, --version and errors (the demo: test_newcomer.py)."""

from __future__ import annotations

import pytest

from dask_gradcode.cli import main


def test_stability_command_prints_the_table(capsys):
    assert main(["stability", "--workers", "10", "20", "--sets", "5"]) == 0
    out = capsys.readouterr().out
    assert "| gaussian-mds | 20 | 3 | 2 |" in out


def test_bad_options_exit_with_a_short_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["stability", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_errors_from_the_library_become_a_one_line_message(capsys):
    assert main(["stability", "--workers", "1", "--sets", "2"]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("dask-gradcode: error: n_stragglers=")


def test_version_prints_the_package_version(capsys):
    from dask_gradcode import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"dask-gradcode {__version__}"
