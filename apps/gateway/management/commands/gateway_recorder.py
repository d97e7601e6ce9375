"""`manage.py gateway_recorder`: write the gateway's recorded calls to the usage ledger, in batches, forever;
and keep the gateway's budget counters (sweep leaked reservations, reconcile with the ledger)."""

import logging
import signal
import time

from django.core.management.base import BaseCommand

from apps.gateway import budgets, recording

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Write the gateway's Redis stream of call records to the usage ledger (run one or more)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="write what is waiting, then exit")

    def handle(self, *args, once=False, **options):
        consumer = recording.consumer_name()
        if once:
            self.stdout.write(f"{recording.drain_all(consumer)} records written")
            budgets.upkeep(force=True)
            return
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        log.info("gateway recorder %s started", consumer)
        while not stopping:
            try:
                handled = recording.drain_once(consumer, block_ms=1000)
                budgets.upkeep()  # every GATEWAY_BUDGET_SYNC_SECONDS: sweep leaked holds, re-read counters
                time.sleep(recording.linger_after(handled))
            except KeyboardInterrupt:
                break
            except Exception:  # noqa: BLE001 - Redis or PostgreSQL away: unacknowledged entries wait, retry
                log.exception("gateway recorder: batch failed; retrying")
                time.sleep(1)
