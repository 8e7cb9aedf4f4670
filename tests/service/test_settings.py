"""Service settings: defaults, then the TOML file, then STYLEFORGE_* variables, then flags;
secrets stay out of reprs and logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from styleforge.config import ServiceSettings
from styleforge.errors import StyleforgeError
from styleforge.service.settings import load_settings, redacted_url


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_later_sources_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / "s.toml", 'port = 9000\nmax_queued = 7\nmodels = ["/a", "/b"]\nrate_window = 30\n'
                                        '[smtp]\nhost = "smtp.example.org"\nport = 465\nsecurity = "ssl"\npassword = "file-secret"\n')
    monkeypatch.setenv("STYLEFORGE_MAX_QUEUED", "9")
    monkeypatch.setenv("STYLEFORGE_SMTP_PASSWORD", "env-secret")
    monkeypatch.setenv("STYLEFORGE_MODELS", "/c:/d")
    settings = load_settings(config, {"port": 9100, "workers": None})
    assert (settings.port, settings.max_queued, settings.rate_window, settings.models) == (9100, 9, 30.0, ("/c", "/d"))
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.security) == ("smtp.example.org", 465, "ssl")
    assert settings.smtp.password == "env-secret" and settings.smtp.enabled
    assert "secret" not in repr(settings)


def test_defaults_without_file_or_environment() -> None:
    assert load_settings() == ServiceSettings()
    assert not ServiceSettings().smtp.enabled and ServiceSettings().max_upload_bytes == 20_000_000
    assert ServiceSettings().max_pixels == 25_000_000 and ServiceSettings().retention_hours == 24


@pytest.mark.parametrize(("text", "fragment"), [
    ("port = 99999", "0 (any free port) to 65535"),
    ("workers = 1.5", "'workers' has a bad value"),
    ("default_size = 2048", "'default_size' (2048) is above 'max_size'"),
    ("device = 'tpu'", "'device' must be one of"),
    ("runtime = 'tensorrt'", "'runtime' must be one of auto, pytorch, openvino"),
    ("smtp = 3", "'smtp' must be a table"),
    ("[smtp]\nsecret = 'x'", "unknown setting 'secret'"),
])
def test_bad_files_are_one_line_errors(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(StyleforgeError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_settings(write(tmp_path / "s.toml", text))


def test_broker_passwords_are_redacted() -> None:
    assert redacted_url("redis://:hunter2@cache.internal:6380/1") == "redis://:***@cache.internal:6380/1"
    assert redacted_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert "hunter2" not in repr(load_settings(None, {"broker": "redis://:hunter2@h:1/0"}))


@pytest.mark.parametrize(("setting", "omp", "workers", "expected"), [
    (3, "1", 2, 3),        # the `threads` setting wins
    (None, "1", 1, 1),     # then OMP_NUM_THREADS, as for any PyTorch program
    (None, "2,1", 4, 2),   # a nested list: the outer level's count
    (None, None, 1, "cores"),
    (None, "0", 2, "cores/2"),  # not a usable count: the cores split between the jobs
    (None, "many", 2, "cores/2"),
])
def test_job_threads(setting: int | None, omp: str | None, workers: int, expected: int | str,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from styleforge.service.jobs.runner import set_job_threads, usable_cores

    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    before = torch.get_num_threads()
    try:
        count = set_job_threads(setting, workers)
        assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(before)
    cores = usable_cores()
    assert count == {"cores": cores, "cores/2": max(1, cores // 2)}.get(expected, expected)
