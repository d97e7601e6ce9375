"""`manage.py gateway_recorder`: write the gateway's recorded calls to the usage ledger, in batches, forever."""

import logging
import signal
import time

from django.core.management.base import BaseCommand

from apps.gateway import recording

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Write the gateway's Redis stream of call records to the usage ledger (run one or more)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="write what is waiting, then exit")

    def handle(self, *args, once=False, **options):
        consumer = recording.consumer_name()
        if once:
            self.stdout.write(f"{recording.drain_all(consumer)} records written")
            return
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        log.info("gateway recorder %s started", consumer)
        while not stopping:
            try:
                recording.drain_once(consumer, block_ms=1000)
            except KeyboardInterrupt:
                break
            except Exception:  # noqa: BLE001 - Redis or PostgreSQL away: unacknowledged entries wait, retry
                log.exception("gateway recorder: batch failed; retrying")
                time.sleep(1)
