"""`manage.py verify_audit [--anchor ID:HASH] [--file export.jsonl]`: check the audit hash chain.

Exit status 0 when intact, 1 (CommandError) naming the first broken link otherwise. Read-only.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from apps.audit.chain import GENESIS_HASH, event_from_dict, walk
from apps.audit.services import audit_chain_verify


def _anchor(value: str) -> tuple[int, str]:
    event_id, sep, digest = value.partition(":")
    if not sep or not event_id.isdigit() or len(digest) != 64:
        raise CommandError(f"--anchor must look like 1234:<64 hex digits> (an event id and its hash), got {value!r}")
    return int(event_id), digest.lower()


class Command(BaseCommand):
    help = ("Walk the audit hash chain and name the first broken link (exit status 1 if broken). "
            "Prints the head (last event id and hash): record it elsewhere and pass it later as --anchor.")

    def add_arguments(self, parser):
        parser.add_argument("--anchor", help="ID:HASH of an event recorded earlier; fail if it is gone or changed")
        parser.add_argument("--file", help="check a JSONL export (a full, unfiltered one) instead of the database")

    def handle(self, *args, **options):
        anchor = _anchor(options["anchor"]) if options["anchor"] else None
        note = ""
        if options["file"]:
            report, start = self._verify_file(options["file"], anchor)
            if start not in (None, GENESIS_HASH):
                note = f" (the file starts after hash {start}, not at the start of the log)"
        else:
            report = audit_chain_verify(anchor=anchor)
        if not report.ok:
            raise CommandError(f"Audit chain BROKEN at event #{report.first_broken_id} "
                               f"after {report.checked} good events: {report.reason}")
        head = f"head #{report.head_id} {report.head_hash}" if report.head_id else "the log is empty"
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.checked} events verified; {head}{note}"))

    def _verify_file(self, path: str, anchor):
        try:
            with open(path, encoding="utf-8") as handle:
                events = [event_from_dict(json.loads(line)) for line in handle if line.strip()]
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}")
        events.sort(key=lambda event: event.pk)
        start = events[0].prev_hash if events else None
        return walk(events, start_prev=start or GENESIS_HASH, anchor=anchor), start
