from django.core.management.base import BaseCommand, CommandError

from apps.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Walk the audit hash chain and name the first broken link. Exits 1 if the chain is broken."

    def handle(self, *args, **options):
        report = audit_chain_verify()
        if not report.ok:
            raise CommandError(f"Audit chain BROKEN after {report.checked} good events: {report.reason}")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.checked} events verified."))
