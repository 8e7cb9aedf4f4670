"""Device and precision choice (styleforge/devices.py), on every kind of CPU.

What the CPU offers decides ``--precision auto``; these tests simulate both answers
(``STYLEFORGE_NATIVE_BF16`` and a monkeypatched flag reader), so each branch runs on a
CPU with native bf16 (AMX, AVX512-BF16) and on one without (AVX2 only) alike."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from styleforge import devices
from styleforge.devices import NATIVE_BF16_ENV, auto_precision, cpu_has_bf16, resolve_precision
from styleforge.errors import StyleforgeError
from tests.conftest import assert_user_error, run_cli

CPU = torch.device("cpu")

# /proc/cpuinfo lines as the three kinds of machine print them (flags shortened).
ZEN3_FLAGS = "fpu sse2 avx avx2 fma bmi2"
ZEN4_FLAGS = "fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni"
XEON_AMX_FLAGS = "fpu sse2 avx avx2 avx512f avx512bw avx512_vnni amx_bf16 amx_tile amx_int8"


def _fake_cpuinfo(monkeypatch: pytest.MonkeyPatch, flags: str) -> None:
    """Make /proc/cpuinfo read as a two-core machine with ``flags``."""
    text = "".join(f"processor\t: {k}\nvendor_id\t: AnyVendor\nflags\t\t: {flags}\n\n" for k in range(2))
    real_open = open

    def fake_open(path: object, *args: object, **kwargs: object) -> object:
        if path == "/proc/cpuinfo":
            return io.StringIO(text)
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", fake_open)


@pytest.mark.parametrize(("flags", "native"), [(ZEN3_FLAGS, False), (ZEN4_FLAGS, True), (XEON_AMX_FLAGS, True)],
                         ids=["zen3-avx2", "zen4-avx512-bf16", "xeon-amx"])
def test_native_bf16_is_read_from_the_flags(monkeypatch: pytest.MonkeyPatch, flags: str, native: bool) -> None:
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    _fake_cpuinfo(monkeypatch, flags)
    assert devices.cpu_flags() >= set(flags.split())
    assert devices.flags_have_native_bf16() is native and cpu_has_bf16() is native
    assert auto_precision(CPU) == auto_precision(CPU, training=True) == ("bf16" if native else "fp32")


def test_a_flag_that_only_contains_the_name_does_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    _fake_cpuinfo(monkeypatch, "avx2 x_avx512_bf16_off")  # whole flags only, not substrings
    assert not cpu_has_bf16()


def test_unreadable_cpuinfo_means_no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)

    def refuse(*_: object, **__: object) -> object:
        raise PermissionError("no /proc here")

    monkeypatch.setattr("builtins.open", refuse)
    assert devices.cpu_flags() == frozenset() and not cpu_has_bf16()


@pytest.mark.parametrize(("override", "native"), [("1", True), ("0", False)])
@pytest.mark.parametrize("flags", [ZEN3_FLAGS, ZEN4_FLAGS], ids=["zen3", "zen4"])
def test_the_override_wins_over_the_flags(monkeypatch: pytest.MonkeyPatch, flags: str, override: str, native: bool) -> None:
    _fake_cpuinfo(monkeypatch, flags)
    monkeypatch.setenv(NATIVE_BF16_ENV, override)
    assert cpu_has_bf16() is native
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"  # explicit choices pass


def test_a_bad_override_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NATIVE_BF16_ENV, "yes")
    with pytest.raises(StyleforgeError, match=r"STYLEFORGE_NATIVE_BF16='yes': use 1 \(native bf16\) or 0"):
        cpu_has_bf16()


def test_fp16_is_refused_on_the_cpu_whatever_it_offers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    with pytest.raises(StyleforgeError, match="fp16 needs CUDA"):
        resolve_precision("fp16", CPU)


@pytest.fixture(scope="module")
def style_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from styleforge.models.files import save_style_model
    from tests.synthetic import random_style_network

    return save_style_model(random_style_network(seed=4), tmp_path_factory.mktemp("m") / "m.safetensors", {})


@pytest.mark.parametrize(("override", "expected"), [("1", "bf16"), ("0", "fp32")])
def test_transfer_runs_auto_precision_as_the_simulated_cpu_allows(style_model: Path, photos: list[Path], tmp_path: Path,
                                                                   override: str, expected: str) -> None:
    """End to end, in a subprocess: ``transfer``'s default ``--precision auto`` follows the CPU."""
    done = run_cli("transfer", "--model", str(style_model), str(photos[0]), "-o", str(tmp_path / "out.png"), "--json",
                   "--device", "cpu", env={NATIVE_BF16_ENV: override})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["precision"] == expected
    assert (tmp_path / "out.png").is_file()


def test_a_bad_override_is_one_line_and_exit_2(style_model: Path, photos: list[Path], tmp_path: Path) -> None:
    done = run_cli("transfer", "--model", str(style_model), str(photos[0]), "-o", str(tmp_path / "out.png"),
                   "--device", "cpu", env={NATIVE_BF16_ENV: "maybe"})
    assert_user_error(done, "STYLEFORGE_NATIVE_BF16='maybe'")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(("device", "precision", "channels_last"), [
    ("cpu", "fp32", False), ("cpu", "bf16", True), ("cuda", "fp32", True), ("cuda", "fp16", True)])
def test_vgg19_runs_channels_last_where_it_measured_faster(device: str, precision: str, channels_last: bool) -> None:
    from styleforge.devices import vgg_memory_format

    expected = torch.channels_last if channels_last else torch.contiguous_format
    assert vgg_memory_format(torch.device(device), precision) == expected
