"""The project's two commands, runnable on a fresh clone with nothing but Python 3.11+ and pip.

    python3 tasks.py serve   # the gateway on its embedded defaults (SQLite + bundled Lago emulator)
    python3 tasks.py test    # the whole test suite, on SQLite and on a PostgreSQL it starts itself

Both create ./.venv and install the project into it on first use.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _ensure_venv(extras: str) -> None:
    stamp = VENV / f".installed-{extras or 'base'}"
    pyproject = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    target = f".[{extras}]" if extras else "."
    print(f"installing {target} into {VENV} (first run only) ...", flush=True)
    subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            target,
        ],
        cwd=ROOT,
        check=True,
    )
    stamp.touch()


def serve(args: list[str]) -> int:
    _ensure_venv("")
    env = dict(os.environ)
    if not env.get("GATEWAY_DATABASE_URL") and not env.get("GATEWAY_LAGO_API_URL"):
        _print_dev_key(env)
    return subprocess.call([str(BIN / "gateway"), "serve", *args], cwd=ROOT, env=env)


def _print_dev_key(env: dict[str, str]) -> None:
    """On the embedded default, make one admin key for the newcomer (printed, never logged)."""
    gateway = str(BIN / "gateway")
    subprocess.run([gateway, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    listed = subprocess.run(
        [gateway, "keys", "list"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    if any(line.split("\t")[0] == "dev" for line in listed.splitlines()):
        print("embedded default: an admin key named 'dev' exists already (gateway keys list)")
        return
    created = (
        subprocess.run(
            [gateway, "keys", "create", "--name", "dev", "--scope", "admin"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    print("embedded default: created an admin key named 'dev' for you:")
    print(f"  export GATEWAY_KEY={created}")
    _make_dev_person(gateway, env)


def _make_dev_person(gateway: str, env: dict[str, str]) -> None:
    """With the first key, one finance operator 'dev' and a random password (printed once)."""
    password = secrets.token_urlsafe(12)
    command = [gateway, "users", "create", "--username", "dev", "--name", "Developer"]
    made = subprocess.run(
        [*command, "--role", "operator", "--password-stdin"],
        cwd=ROOT,
        env=env,
        input=f"{password}\n",
        capture_output=True,
        text=True,
    )
    if made.returncode == 0:
        print(f"  finance pages: sign in as 'dev' with the password {password}")


# Two pytest workers (pytest-xdist), each with its own PostgreSQL server: the suite in about
# half the time on two cores. ``-n 0`` (or any ``-n``) given to ``test`` overrides it.
WORKERS = ["-n", "2"]


def test(args: list[str]) -> int:
    _ensure_venv("dev")
    given = any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args)
    workers = [] if given else WORKERS
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *workers, *args], cwd=ROOT)


def main() -> int:
    commands = {"serve": serve, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
