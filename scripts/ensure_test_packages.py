#!/usr/bin/env python3
"""Make sure the Debian packages some tests need are installed (idempotent).

* ``chromium`` and ``chromium-driver``: the end-to-end browser tests (``tests/browser``) drive
  ``/usr/bin/chromium`` through ``/usr/bin/chromedriver``.
* ``openttd-opensfx``: 71 recorded sound effects (``opensfx.cat``), the real audio of the aisfx retrieval
  and FD-aisfx tests (``tests/eval/test_aisfx.py``, read by :mod:`foleygen.realdata`).

``make test`` runs this script first so that CI always has them, and those tests run there.

* All present: prints one line and exits 0 at once (no apt call, so it is quick).
* Some missing and running as root (or with passwordless ``sudo -n``): ``apt-get install -y
  --no-install-recommends`` of the missing ones; ``apt-get update`` runs only if that first install fails
  (stale or empty package lists), then the install is retried.
* Missing and neither: prints what to run; exits 1 only in CI (``CI`` set), 0 otherwise, so that a
  developer without root can still run the other tests (those that need a package skip with a reason).

Standard library only: it runs before anything else is known to be installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

#: package -> the file it installs that the tests use (exactly that path; its presence means installed)
FILES = {
    "chromium": "/usr/bin/chromium",
    "chromium-driver": "/usr/bin/chromedriver",
    "openttd-opensfx": "/usr/share/games/openttd/baseset/opensfx/opensfx.cat",
}
#: the packages whose file is a program (it must also be executable)
PROGRAMS = frozenset({"chromium", "chromium-driver"})
PACKAGES = tuple(FILES)
NAME = "ensure_test_packages"


def missing_packages() -> list[str]:
    """The packages whose file is not there yet (or, for a program, not executable)."""
    return [
        pkg
        for pkg, path in FILES.items()
        if not (os.path.isfile(path) and (pkg not in PROGRAMS or os.access(path, os.X_OK)))
    ]


def _can_sudo() -> bool:
    """Passwordless sudo (CI runners, developer boxes set up for it); never prompts."""
    if shutil.which("sudo") is None:
        return False
    return subprocess.call(["sudo", "-n", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


_SUDO: list[str] = []  # ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"] when not root


def _apt(*args: str) -> int:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = [*_SUDO, "apt-get", *args]
    print(f"{NAME}: " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, env=env)


def install(packages: list[str]) -> bool:
    """Install ``packages`` with apt-get (root only); update the lists only when needed."""
    if _apt("install", "-y", "--no-install-recommends", *packages) == 0:
        return True
    # The first failure is nearly always "Unable to locate package": the lists are missing or stale.
    if _apt("update") != 0:
        return False
    return _apt("install", "-y", "--no-install-recommends", *packages) == 0


def main() -> int:
    """Exit status: 0 when the packages are (now) available or not required, 1 otherwise."""
    missing = missing_packages()
    if not missing:
        print(f"{NAME}: {', '.join(PACKAGES)} already installed")
        return 0
    in_ci = bool(os.environ.get("CI"))
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not is_root and shutil.which("apt-get") is not None and _can_sudo():
        _SUDO[:] = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    elif not is_root or shutil.which("apt-get") is None:
        why = "not root (and no passwordless sudo)" if not is_root else "no apt-get on this system"
        print(
            f"{NAME}: missing {', '.join(missing)} ({why}); install them with "
            f"`sudo apt-get install -y {' '.join(missing)}` or the tests that need them will be skipped",
            file=sys.stderr,
        )
        return 1 if in_ci else 0
    if not install(missing) or missing_packages():
        print(f"{NAME}: could not install {', '.join(missing_packages())}", file=sys.stderr)
        return 1 if in_ci else 0
    print(f"{NAME}: installed {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
