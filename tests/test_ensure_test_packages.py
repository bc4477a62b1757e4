"""scripts/ensure_test_packages.py decides correctly without touching the system (apt-get is faked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ensure_test_packages.py"


@pytest.fixture
def script(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("_ensure_test_packages", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = {"chromium": "chromium", "chromium-driver": "chromedriver", "openttd-opensfx": "opensfx.cat"}
    fake = {pkg: tmp_path / name for pkg, name in names.items()}
    monkeypatch.setattr(module, "FILES", {k: str(v) for k, v in fake.items()})
    monkeypatch.delenv("CI", raising=False)
    return module, fake


def _install_binaries(fake: dict) -> None:
    for path in fake.values():
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)


def test_nothing_to_do_when_installed(script, monkeypatch, capsys):
    module, fake = script
    _install_binaries(fake)
    monkeypatch.setattr(module, "_apt", lambda *a: pytest.fail("apt-get must not run"))
    assert module.main() == 0
    assert "already installed" in capsys.readouterr().out


def test_root_installs_and_updates_lists_only_after_a_failed_install(script, monkeypatch):
    module, fake = script
    calls = []

    def fake_apt(*args):
        calls.append(args[0])
        if args[0] == "install" and calls.count("install") == 1:
            return 100  # "Unable to locate package": the lists are stale
        if args[0] == "install":
            _install_binaries(fake)
        return 0

    monkeypatch.setattr(module, "_apt", fake_apt)
    monkeypatch.setattr(module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(module.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert module.main() == 0
    assert calls == ["install", "update", "install"]


@pytest.mark.parametrize("ci, expected", [(None, 0), ("true", 1)])
def test_without_root_or_sudo_explains_and_fails_only_in_ci(script, monkeypatch, capsys, ci, expected):
    module, _ = script
    monkeypatch.setattr(module.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(module, "_can_sudo", lambda: False)
    monkeypatch.setattr(module, "_apt", lambda *a: pytest.fail("apt-get must not run without root"))
    if ci:
        monkeypatch.setenv("CI", ci)
    assert module.main() == expected
    err = capsys.readouterr().err
    assert "sudo apt-get install -y chromium chromium-driver" in err and "not root" in err


def test_only_the_missing_packages_are_installed(script, monkeypatch, capsys):
    module, fake = script
    _install_binaries({k: v for k, v in fake.items() if k != "openttd-opensfx"})
    calls = []

    def fake_apt(*args):
        calls.append(args)
        fake["openttd-opensfx"].write_bytes(b"\0" * 8)
        return 0

    monkeypatch.setattr(module, "_apt", fake_apt)
    monkeypatch.setattr(module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(module.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert module.main() == 0
    assert calls == [("install", "-y", "--no-install-recommends", "openttd-opensfx")]
    assert "installed openttd-opensfx" in capsys.readouterr().out


def test_a_binary_that_is_not_executable_counts_as_missing(script):
    module, fake = script
    _install_binaries(fake)
    fake["chromium"].chmod(0o644)
    assert module.missing_packages() == ["chromium"]
