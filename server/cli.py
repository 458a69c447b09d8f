"""The `attune` command: serve, db, user, client, session, participants, keys, retention, hold,
purge, audit."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.core.models import Account, Role
from server.core.protocol import AccessEnd
from server.errors import AttuneError
from server.runtime import Runtime, StartupError, runtime
from server.services import accounts as account_service
from server.services import participants, scheduling
from server.services.consents import Consents
from server.services.email import Mailer
from server.settings import Settings, SettingsError, load_settings
from server.web.validation import parse_datetime

Command = Callable[[Runtime, argparse.Namespace], Awaitable[int]]
# On SIGTERM: stop listening, close sockets with 1001, then give requests this long to finish.
SHUTDOWN_GRACE_SECONDS = 10.0


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--data-dir", type=Path, help="directory for the database and keys")
    parser.add_argument("--database-url", help="e.g. postgresql+asyncpg://user@host/db")


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return load_settings(
        config_file=args.config,
        overrides={"data_dir": args.data_dir, "database_url": args.database_url, **extra},
    )


def _read_password(prompt: str) -> str:
    """From a terminal prompt (asked twice) or the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != first:
            raise AttuneError("The two passwords differ.")
        return first
    return sys.stdin.readline().rstrip("\n")


async def _user_add(rt: Runtime, args: argparse.Namespace) -> int:
    password = _read_password(f"Password for {args.email}: ")
    account = await account_service.create_account(
        rt.db,
        rt.audit,
        email=args.email,
        password=password,
        role=Role(args.role),
        actor="system:cli",
        now=datetime.now(UTC),
    )
    print(f"Added {account.role.value} {account.email}")
    return 0


async def _client_add(rt: Runtime, args: argparse.Namespace) -> int:
    therapist = await account_service.account_by_email(rt.db, args.therapist)
    if therapist.role is not Role.THERAPIST:
        raise AttuneError(f"{therapist.email} is not a therapist.")
    client = await scheduling.create_client(
        rt.db, rt.audit, therapist, args.alias, datetime.now(UTC)
    )
    print(f"Added client {client.alias} ({client.id})")
    return 0


async def _session_create(rt: Runtime, args: argparse.Namespace) -> int:
    therapist = await account_service.account_by_email(rt.db, args.therapist)
    client = await scheduling.client_by_alias(rt.db, therapist, args.client)
    now = datetime.now(UTC)
    starts_at = parse_datetime(args.start, "--start") if args.start else now
    mail = Mailer(rt.settings, rt.vault, await Consents.load(rt.db))
    session, invite = await scheduling.create_session(
        rt.db,
        rt.audit,
        therapist,
        client_id=client.id,
        starts_at=starts_at,
        minutes=args.minutes,
        now=now,
        mail=mail,
    )
    base = rt.settings.base_url
    print(
        f"Session {session.id} with {client.alias}, "
        f"{session.starts_at:%Y-%m-%d %H:%M} to {session.ends_at:%H:%M} UTC"
    )
    print(f"Client join link (share it privately; shown only now): {base}/join/{invite.token}")
    print(f"Therapist host URL: {base}/host/{session.id}")
    return 0


class _NoLiveRooms:
    """The CLI holds no live rooms: a removed or replaced link's cookies end in the database
    at once, and a socket still open on a server is refused when it next connects."""

    def end_account_access(
        self,
        account_id: str,
        reason: AccessEnd,
        *,
        sign_in_id: str | None = None,
        except_sign_in_id: str | None = None,
    ) -> None:
        """Nothing is live here."""

    def end_client_access(
        self,
        reason: AccessEnd,
        *,
        session_id: str | None = None,
        client_access_id: str | None = None,
    ) -> None:
        """Nothing is live here."""


async def _therapist(rt: Runtime, email: str) -> Account:
    therapist = await account_service.account_by_email(rt.db, email)
    if therapist.role is not Role.THERAPIST:
        raise AttuneError(f"{therapist.email} is not a therapist.")
    return therapist


async def _participants_list(rt: Runtime, args: argparse.Namespace) -> int:
    therapist = await _therapist(rt, args.therapist)
    for person in await participants.list_participants(rt.db, rt.vault, therapist, args.session):
        link = "opened" if person.link_opened else "active" if person.link_active else "none"
        print(
            f"{person.id}  {person.position}  {person.kind.value:6}  link {link:6}  {person.label}"
        )
    return 0


async def _participants_add(rt: Runtime, args: argparse.Namespace) -> int:
    therapist = await _therapist(rt, args.therapist)
    now, max_people = datetime.now(UTC), rt.settings.max_people_per_session
    if args.client is not None:
        client = await scheduling.client_by_alias(rt.db, therapist, args.client)
        mail = Mailer(rt.settings, rt.vault, await Consents.load(rt.db))
        person, invite = await participants.add_client(
            rt.db,
            rt.audit,
            rt.vault,
            therapist,
            args.session,
            client_id=client.id,
            max_people=max_people,
            now=now,
            mail=mail,
        )
    else:
        person, invite = await participants.add_guest(
            rt.db,
            rt.audit,
            rt.vault,
            therapist,
            args.session,
            label=args.guest,
            max_people=max_people,
            now=now,
        )
    print(f"Added {person.kind.value} {person.label} ({person.id})")
    print(f"Their own join link (share it privately; shown only now): {_join(rt, invite.token)}")
    return 0


async def _participants_remove(rt: Runtime, args: argparse.Namespace) -> int:
    therapist = await _therapist(rt, args.therapist)
    await participants.remove(
        rt.db,
        rt.audit,
        _NoLiveRooms(),
        therapist,
        args.session,
        args.participant,
        datetime.now(UTC),
    )
    print(f"Removed {args.participant}: their link and cookies no longer work")
    return 0


async def _participants_reissue(rt: Runtime, args: argparse.Namespace) -> int:
    therapist = await _therapist(rt, args.therapist)
    invite = await participants.reissue(
        rt.db,
        rt.audit,
        _NoLiveRooms(),
        therapist,
        args.session,
        args.participant,
        datetime.now(UTC),
        mail=Mailer(rt.settings, rt.vault, await Consents.load(rt.db)),
    )
    print(f"New join link (the old one no longer works; shown only now): {_join(rt, invite.token)}")
    return 0


def _join(rt: Runtime, token: str) -> str:
    return f"{rt.settings.base_url}/join/{token}"


async def _db_upgrade(rt: Runtime, args: argparse.Namespace) -> int:
    from server.db.migrate import current_revision

    print(f"Database is at revision {await current_revision(rt.db)}")
    return 0


async def _audit_verify(rt: Runtime, args: argparse.Namespace) -> int:
    result = await rt.audit.verify(rt.db)
    if result.ok:
        print(f"Audit trail intact: {result.count} entries verified.")
        return 0
    print(
        f"Audit trail BROKEN at sequence number {result.first_bad_seq}: {result.reason}",
        file=sys.stderr,
    )
    return 1


async def _preflight(settings: Settings) -> None:
    """Check keys and schema before listening, so a bad key stops the start with one line."""
    async with runtime(settings):
        pass


async def _keys_rotate(rt: Runtime, args: argparse.Namespace) -> int:
    from privacy.keyfiles import save_keyring
    from privacy.vault import generate_data_key
    from server.runtime import keyring_path
    from server.services import two_factor

    if rt.settings.master_key:
        raise StartupError(
            "Rotation needs the master keyring file; ATTUNE_MASTER_KEY holds a single key. "
            "Unset it to use the keyring file in the data directory."
        )
    old_ring = rt.vault.ring
    ring = old_ring.with_new_version(generate_data_key())
    # Save first: if rewrapping stops half way, both versions are still on disk.
    save_keyring(keyring_path(rt.settings), ring)
    count = await rt.vault.rewrap_all(rt.db, ring)
    await two_factor.reseal_all(rt.db, old_ring, ring)
    async with rt.db.write() as conn:
        await rt.audit.record(
            conn,
            at=datetime.now(UTC),
            actor="system:cli",
            action="keys.rotate",
            details={"master_version": ring.current_version, "data_keys_rewrapped": count},
        )
    print(
        f"Master key version {ring.current_version} is now current; "
        f"re-wrapped {count} data keys. Old versions: {list(ring.versions[:-1])}"
    )
    return 0


async def _keys_retire(rt: Runtime, args: argparse.Namespace) -> int:
    from privacy.keyfiles import save_keyring
    from server.runtime import keyring_path
    from server.services import two_factor

    in_use = await rt.vault.versions_in_use(rt.db)
    in_use |= await two_factor.master_versions_in_use(rt.db)
    if args.version in in_use:
        raise StartupError(
            f"Master key version {args.version} still wraps data keys or two-factor keys; "
            "run `attune keys rotate` first."
        )
    try:
        ring = rt.vault.ring.without_version(args.version)
    except (ValueError, LookupError) as exc:
        raise StartupError(str(exc)) from None
    save_keyring(keyring_path(rt.settings), ring)
    print(f"Retired master key version {args.version}; remaining: {list(ring.versions)}")
    return 0


async def _retention_show(rt: Runtime, args: argparse.Namespace) -> int:
    from server.services.retention import CATEGORY_NOUNS, Retention, policy_json

    policies = await Retention(rt.db, rt.audit, rt.vault).policies()
    if args.json:
        print(json.dumps({"policies": [policy_json(p) for p in policies.values()]}, indent=2))
        return 0
    print(f"{'category':<13} {'keep_days':>9}  {'action':<9}  set by")
    for category, entry in policies.items():
        source = (
            "default" if entry.is_default else f"{entry.updated_by} {entry.updated_at:%Y-%m-%d}"
        )
        stored = "" if entry.stored else f"  (no {CATEGORY_NOUNS[category]} stored yet)"
        policy = entry.policy
        print(f"{category:<13} {policy.keep_days:>9}  {policy.action:<9}  {source}{stored}")
    return 0


async def _retention_set(rt: Runtime, args: argparse.Namespace) -> int:
    from server.services.retention import Retention, parse_policy

    if args.override_floor and not args.reason:
        raise AttuneError("--override-floor needs --reason TEXT saying why.")
    reason = args.reason if args.override_floor else None
    policy = parse_policy(args.category, args.days, args.action, reason)
    warnings = await Retention(rt.db, rt.audit, rt.vault).set_policy(
        policy, actor="system:cli", now=datetime.now(UTC)
    )
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"Saved: keep {policy.category} {policy.keep_days} days, then {policy.action}.")
    return 0


async def _hold_add(rt: Runtime, args: argparse.Namespace) -> int:
    from server.services.retention import Retention

    hold = await Retention(rt.db, rt.audit, rt.vault).add_hold(
        args.client_id, args.reason, actor="system:cli", now=datetime.now(UTC)
    )
    print(f"Hold placed on client {hold.client_id}: nothing of it is purged until it is lifted.")
    return 0


async def _hold_remove(rt: Runtime, args: argparse.Namespace) -> int:
    from server.services.retention import Retention

    hold = await Retention(rt.db, rt.audit, rt.vault).remove_hold(
        args.client_id, args.reason, actor="system:cli", now=datetime.now(UTC)
    )
    print(f"Hold on client {hold.client_id} lifted; the next purge run applies the policies.")
    return 0


async def _hold_list(rt: Runtime, args: argparse.Namespace) -> int:
    from server.services.retention import Retention, hold_json

    now = datetime.now(UTC)
    holds = await Retention(rt.db, rt.audit, rt.vault).holds()
    if args.json:
        print(json.dumps({"holds": [hold_json(h, now) for h in holds]}, indent=2))
        return 0
    for hold in holds:
        state = "standing" if hold.released_at is None else f"lifted {hold.released_at:%Y-%m-%d}"
        print(f"{hold.client_id}  {hold.placed_at:%Y-%m-%d}  {state}  {hold.reason}")
    if not holds:
        print("No holds.")
    return 0


async def _purge(rt: Runtime, args: argparse.Namespace) -> int:
    from server.services.retention import CATEGORY_NOUNS, Retention, report_json

    report = await Retention(rt.db, rt.audit, rt.vault).purge(
        datetime.now(UTC), trigger="cli", actor="system:cli", dry_run=args.dry_run
    )
    if args.json:
        print(json.dumps(report_json(report), indent=2))
        return 0
    verb = "Would" if report.dry_run else "Did"
    for category, by_action in report.counts.items():
        for action, count in by_action.items():
            print(f"{verb} {action} {count:,} {CATEGORY_NOUNS[category]}")
    if not report.total:
        print("Nothing is due." if report.dry_run else "Nothing was due.")
    if report.keys_destroyed:
        print(f"Destroyed {report.keys_destroyed} data keys (clients whose last data went).")
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"{'Dry run' if report.dry_run else 'Purge'} took {report.duration_ms} ms.")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from server.app import create_app
    from server.gc_tuning import freeze_after_startup
    from server.logs import AccessLogger, configure_logging

    settings = _settings(args, host=args.host, port=args.port)
    configure_logging(settings.log_level)
    asyncio.run(_preflight(settings))
    app = create_app(settings)

    async def announce(app: web.Application) -> None:
        from server.keys import CLOCK, DB

        token = await account_service.issue_setup_link_if_needed(app[DB], app[CLOCK]())
        print(f"Attune is running: open {settings.base_url}/", flush=True)
        if token:
            print(
                "No accounts yet. Create the first admin with this one-time link "
                f"(valid 24 hours): {settings.base_url}/setup/{token}",
                flush=True,
            )

    app.on_startup.append(announce)
    app.on_startup.append(freeze_after_startup)  # last: freezes what start-up built
    ssl_context = None
    if settings.tls_cert_file and settings.tls_key_file:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=ssl_context,
        access_log_class=AccessLogger,
        print=None,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
    )
    return 0


def _cues_replay(args: argparse.Namespace) -> int:
    """Run the cue engine over a JSONL feature log and print the prompts as JSONL."""
    import json

    from server.core.cues.config import CueConfig
    from server.core.cues.replay import ReplayError, replay

    config = CueConfig().scaled(args.scale)
    try:
        with args.file.open(encoding="utf-8") as lines:
            for prompt in replay(lines, config):
                print(json.dumps(prompt, sort_keys=True))
    except OSError as exc:
        raise AttuneError(f"cannot read {args.file}: {exc.strerror}") from None
    except ReplayError as exc:
        raise AttuneError(str(exc)) from None
    return 0


def _cues_scenario(args: argparse.Namespace) -> int:
    """Print a seeded synthetic session as a JSONL feature log (for `attune cues replay`)."""
    import json

    from server.core.cues.group_synthetic import GROUP_SCENARIOS, group_scenario, to_jsonl
    from server.core.cues.synthetic import SCENARIOS, scenario_frames

    if args.name in GROUP_SCENARIOS:
        lines = to_jsonl(group_scenario(args.name, minutes=args.minutes, seed=args.seed))
    elif args.name in SCENARIOS:
        frames = scenario_frames(args.name, minutes=args.minutes, seed=args.seed)
        lines = (json.dumps(frame.to_message()) for frame in frames)
    else:
        known = ", ".join((*SCENARIOS, *GROUP_SCENARIOS))
        raise AttuneError(f"no scenario {args.name!r}; one of {known}")
    for line in lines:
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line interface."""
    parser = argparse.ArgumentParser(prog="attune", description="Attune telehealth companion")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    _add_settings_flags(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply migrations")
    _add_settings_flags(upgrade)
    upgrade.set_defaults(run=_db_upgrade)

    user = commands.add_parser("user", help="accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    user_add = user_commands.add_parser(
        "add", help="add an account (password from a prompt or the first line of stdin)"
    )
    _add_settings_flags(user_add)
    user_add.add_argument("email")
    user_add.add_argument("--role", choices=[r.value for r in Role], required=True)
    user_add.set_defaults(run=_user_add)

    client = commands.add_parser("client", help="clients")
    client_commands = client.add_subparsers(dest="client_command", required=True)
    client_add = client_commands.add_parser("add", help="add a client by alias")
    _add_settings_flags(client_add)
    client_add.add_argument("alias")
    client_add.add_argument("--therapist", required=True, metavar="EMAIL")
    client_add.set_defaults(run=_client_add)

    session = commands.add_parser("session", help="sessions")
    session_commands = session.add_subparsers(dest="session_command", required=True)
    create = session_commands.add_parser("create", help="schedule a session; prints the links")
    _add_settings_flags(create)
    create.add_argument("--therapist", required=True, metavar="EMAIL")
    create.add_argument("--client", required=True, metavar="ALIAS")
    create.add_argument("--start", metavar="ISO8601", help="default: now")
    create.add_argument("--minutes", type=int, default=50)
    create.set_defaults(run=_session_create)

    _add_participant_commands(commands)

    cues = commands.add_parser("cues", help="the nonverbal-cue engine")
    cues_commands = cues.add_subparsers(dest="cues_command", required=True)
    replay_cmd = cues_commands.add_parser(
        "replay", help="run the engine over a JSONL feature log; prints prompts as JSONL"
    )
    replay_cmd.add_argument("file", type=Path)
    replay_cmd.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the observation windows (tuning and demos)",
    )
    replay_cmd.set_defaults(run_cues=_cues_replay)
    scenario_cmd = cues_commands.add_parser(
        "scenario", help="print a seeded synthetic session as a JSONL feature log"
    )
    scenario_cmd.add_argument("name", help="e.g. withdrawal, couple_dominant")
    scenario_cmd.add_argument("--minutes", type=float, help="default: the scenario's own")
    scenario_cmd.add_argument("--seed", type=int, default=0)
    scenario_cmd.set_defaults(run_cues=_cues_scenario)

    keys = commands.add_parser("keys", help="master key management")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = keys_commands.add_parser(
        "rotate", help="add a master key version and re-wrap every data key (data untouched)"
    )
    _add_settings_flags(rotate)
    rotate.set_defaults(run=_keys_rotate)
    retire = keys_commands.add_parser("retire", help="remove an old master key version")
    _add_settings_flags(retire)
    retire.add_argument("version", type=int)
    retire.set_defaults(run=_keys_retire)

    retention = commands.add_parser("retention", help="retention policies")
    retention_commands = retention.add_subparsers(dest="retention_command", required=True)
    show = retention_commands.add_parser("show", help="the policy of every data category")
    _add_settings_flags(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=_retention_show)
    set_policy = retention_commands.add_parser(
        "set", help="keep a category DAYS days, then delete or anonymize it"
    )
    _add_settings_flags(set_policy)
    set_policy.add_argument("category", metavar="CATEGORY")
    set_policy.add_argument("days", metavar="DAYS")
    set_policy.add_argument("--action", choices=["delete", "anonymize"])
    set_policy.add_argument(
        "--override-floor", action="store_true", help="go below the 6-year floor (with --reason)"
    )
    set_policy.add_argument("--reason", metavar="TEXT")
    set_policy.set_defaults(run=_retention_set)

    hold = commands.add_parser("hold", help="legal holds: nothing of the client is purged")
    hold_commands = hold.add_subparsers(dest="hold_command", required=True)
    for name, run, text in (
        ("add", _hold_add, "place a hold on a client's data"),
        ("remove", _hold_remove, "lift the standing hold"),
    ):
        command = hold_commands.add_parser(name, help=text)
        _add_settings_flags(command)
        command.add_argument("client_id", metavar="CLIENT_ID")
        command.add_argument("--reason", required=True, metavar="TEXT")
        command.set_defaults(run=run)
    hold_list = hold_commands.add_parser("list", help="every hold, standing ones first")
    _add_settings_flags(hold_list)
    hold_list.add_argument("--json", action="store_true")
    hold_list.set_defaults(run=_hold_list)

    purge = commands.add_parser("purge", help="apply the retention policies now")
    _add_settings_flags(purge)
    purge.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    purge.add_argument("--json", action="store_true", help="counts per category and action")
    purge.set_defaults(run=_purge)

    audit = commands.add_parser("audit", help="audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser("verify", help="check the hash chain and checkpoints")
    _add_settings_flags(verify)
    verify.set_defaults(run=_audit_verify)
    return parser


def _add_participant_commands(commands: Any) -> None:
    """`attune participants list|add|remove|reissue`: who besides the therapist takes part."""
    people = commands.add_parser(
        "participants", help="the people in a session besides the therapist (up to three)"
    )
    people_commands = people.add_subparsers(dest="participants_command", required=True)

    def command(name: str, text: str, run: Command, *, participant: bool) -> Any:
        parser = people_commands.add_parser(name, help=text)
        _add_settings_flags(parser)
        parser.add_argument("session", metavar="SESSION_ID")
        if participant:
            parser.add_argument("participant", metavar="PARTICIPANT_ID")
        parser.add_argument("--therapist", required=True, metavar="EMAIL")
        parser.set_defaults(run=run)
        return parser

    command("list", "list them with their link's status", _participants_list, participant=False)
    add = command(
        "add",
        "add a client or a guest; prints their own link",
        _participants_add,
        participant=False,
    )
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--client", metavar="ALIAS", help="one of the therapist's clients")
    who.add_argument("--guest", metavar="LABEL", help="e.g. Interpreter (1 to 60 characters)")
    command("remove", "take a person out: their link ends", _participants_remove, participant=True)
    command(
        "reissue",
        "replace a person's link; prints the new one",
        _participants_reissue,
        participant=True,
    )


async def _run(command: Command, args: argparse.Namespace) -> int:
    async with runtime(_settings(args)) as rt:
        return await command(rt, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `attune` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "cues":
            cues_command: Callable[[argparse.Namespace], int] = args.run_cues
            return cues_command(args)
        command: Command = args.run
        return asyncio.run(_run(command, args))
    except (AttuneError, SettingsError, StartupError) as exc:
        print(f"attune: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
