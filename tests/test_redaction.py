"""No password, token or lease token in a log line or a printed URL."""
from __future__ import annotations

import logging

import uvicorn

from tuneserve_service.config import Settings, redacted_url
from tuneserve_service.db.engine import Database
from tuneserve_service.main import RedactQuerySecrets, create_app
from tuneserve_service.serving import GuardedHttpProtocol, uvicorn_options


def test_redacted_url_masks_passwords_and_secret_query_values():
    url = "postgresql+psycopg://tune:s3cr3t-pw@db.example:5432/tuneserve?sslpassword=k3y&application_name=srv"
    shown = redacted_url(url)
    assert "s3cr3t-pw" not in shown and "k3y" not in shown
    assert shown.startswith("postgresql+psycopg://tune:***@db.example:5432/tuneserve") and "application_name=srv" in shown
    assert redacted_url("sqlite:///tuneserve-data/tuneserve.db") == "sqlite:///tuneserve-data/tuneserve.db"
    assert redacted_url("::not a url::") == "<unparseable database URL>"


def test_engines_never_log_parameters(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert db.engine.hide_parameters is True
    finally:
        db.dispose()


def test_access_log_query_secrets_are_masked():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/dashboard?token=tsv_abc&x=1&api_token=zzz", "1.1", 200), None)
    assert RedactQuerySecrets().filter(record)
    line = record.getMessage()
    assert "tsv_abc" not in line and "zzz" not in line and "x=1" in line and "token=***" in line


def test_uvicorn_options_carry_the_header_deadline():
    settings = Settings(header_timeout=3.5, keep_alive_timeout=4)
    opts = uvicorn_options(settings)
    assert issubclass(opts["http"], GuardedHttpProtocol) and opts["http"].header_timeout == 3.5
    assert opts["timeout_keep_alive"] == 4
    config = uvicorn.Config(create_app(settings), **opts)
    config.load()
    assert config.http_protocol_class is opts["http"]
    # Several processes: uvicorn pickles its config, so the protocol goes by import string.
    assert uvicorn_options(settings, workers=2)["http"] == "tuneserve_service.serving:GuardedHttpProtocol"
