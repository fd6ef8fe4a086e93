"""`make demo`: the product on its embedded defaults (SQLite, no servers). It migrates, creates a
demo team with an owner, an approver and an on-call user (credentials printed), and serves the
portal until Ctrl-C. It never touches a production database: it refuses when DATABASE_URL is set
to anything but SQLite."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ.setdefault("MODELPLANE_DEMO", "1")
    import django

    django.setup()


def seed(password: str) -> dict[str, str]:
    """Demo people and team (idempotent: a re-run resets the printed passwords)."""
    from django.contrib.auth import get_user_model

    from registry.models import Membership, Team

    user_model = get_user_model()
    team, _ = Team.objects.get_or_create(slug="demo", defaults={"name": "Demo team"})
    people = {
        "owner": {"role": "owner", "is_approver": False, "is_on_call": False},
        "approver": {"role": "maintainer", "is_approver": True, "is_on_call": False},
        "oncall": {"role": "maintainer", "is_approver": False, "is_on_call": True},
    }
    for username, duties in people.items():
        user, _ = user_model.objects.get_or_create(username=username)
        user.set_password(password)
        user.is_staff = user.is_superuser = username == "owner"
        user.save()
        Membership.objects.update_or_create(team=team, user=user, defaults=duties)
    return dict.fromkeys(people, password)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    parser.add_argument("--no-serve", action="store_true", help="set up, print, and exit")
    args = parser.parse_args(argv)

    database_url = os.environ.get("DATABASE_URL", "")
    if database_url and not database_url.startswith("sqlite"):
        print("The demo runs on its own SQLite database; unset DATABASE_URL.", file=sys.stderr)
        return 2
    _setup_django()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(9)
    logins = seed(password)

    url = f"http://{args.host}:{args.port}/"
    print("\n  Model control plane demo")
    print(f"  Portal:   {url}")
    print(f"  API docs: {url}api/docs/")
    for username, pw in logins.items():
        print(f"  Login:    {username} / {pw}")
    print("  Stop with Ctrl-C.\n", flush=True)
    if args.no_serve:
        return 0

    env = os.environ.copy()
    env.setdefault("MODELPLANE_DEMO", "1")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"{args.host}:{args.port}"],
        cwd=ROOT,
        env=env,
    )
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)
        return 0


if __name__ == "__main__":
    sys.exit(main())
