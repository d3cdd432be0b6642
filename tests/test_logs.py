"""Logging: warnings on the terminal as ``lsms COMMAND: message``; everything from INFO in ``run.log``."""

from __future__ import annotations

import logging

import pytest

from lsms import logs


def test_run_log_keeps_info_and_the_error_that_ended_the_run(tmp_path, capsys) -> None:
    logs.configure("test")
    logs.configure("demo")  # once: a second call renames the command, adds no second handler
    logger = logging.getLogger("lsms.some.module")
    with pytest.raises(ValueError, match="broken"), logs.run_log(tmp_path / "run") as path:
        logger.info("started")
        logger.warning("careful")
        raise ValueError("broken")
    logger.info("after the run")
    text = path.read_text()
    assert "INFO lsms.some.module: started" in text and "WARNING lsms.some.module: careful" in text
    assert "ERROR lsms: ValueError: broken" in text and "after the run" not in text
    err = capsys.readouterr().err
    assert err.count("lsms demo: careful") == 1 and "started" not in err and "broken" not in err


def test_run_log_survives_text_that_is_not_utf8(tmp_path) -> None:
    # A command line with undecodable bytes arrives as lone surrogates.
    with logs.run_log(tmp_path) as path:
        logging.getLogger("lsms.cli").info("lsms predict --text %s", "caf\udce9")
    assert "caf\\udce9" in path.read_text()
