#!/usr/bin/env python3
"""Make sure Debian's headless Chromium and its chromedriver are installed (idempotent).

The end-to-end demo test (``tests/browser``) drives ``/usr/bin/chromium`` through
``/usr/bin/chromedriver``. ``make test`` runs this script first so that CI always has them.

* Both present: prints one line and exits 0 at once (no apt call, so it is quick).
* Missing and running as root (or with passwordless ``sudo -n``): ``apt-get install -y chromium
  chromium-driver``; ``apt-get update`` runs only if that first install fails (stale or empty package
  lists), then the install is retried.
* Missing and neither: prints what to run; exits 1 only in CI (``CI`` set), 0 otherwise, so that a
  developer without root can still run the other tests (the browser test then skips with a reason).

Standard library only: it runs before anything else is known to be installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

PACKAGES = ("chromium", "chromium-driver")
# Debian installs these two paths; the browser test uses exactly them.
BINARIES = {"chromium": "/usr/bin/chromium", "chromium-driver": "/usr/bin/chromedriver"}


def missing_packages() -> list[str]:
    """The packages whose binary is not an executable file yet."""
    return [pkg for pkg, path in BINARIES.items() if not (os.path.isfile(path) and os.access(path, os.X_OK))]


def _can_sudo() -> bool:
    """Passwordless sudo (CI runners, developer boxes set up for it); never prompts."""
    if shutil.which("sudo") is None:
        return False
    return subprocess.call(["sudo", "-n", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


_SUDO: list[str] = []  # ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"] when not root


def _apt(*args: str) -> int:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = [*_SUDO, "apt-get", *args]
    print("ensure_browser: " + " ".join(cmd), flush=True)
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
    """Exit status: 0 when the browser is (now) available or not required, 1 otherwise."""
    missing = missing_packages()
    if not missing:
        print("ensure_browser: chromium and chromedriver already installed")
        return 0
    in_ci = bool(os.environ.get("CI"))
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not is_root and shutil.which("apt-get") is not None and _can_sudo():
        _SUDO[:] = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    elif not is_root or shutil.which("apt-get") is None:
        why = "not root (and no passwordless sudo)" if not is_root else "no apt-get on this system"
        print(
            f"ensure_browser: missing {', '.join(missing)} ({why}); install them with "
            f"`sudo apt-get install -y {' '.join(PACKAGES)}` or the browser tests will be skipped",
            file=sys.stderr,
        )
        return 1 if in_ci else 0
    if not install(list(PACKAGES)) or missing_packages():
        print(f"ensure_browser: could not install {', '.join(missing_packages())}", file=sys.stderr)
        return 1 if in_ci else 0
    print("ensure_browser: installed chromium and chromedriver")
    return 0


if __name__ == "__main__":
    sys.exit(main())
