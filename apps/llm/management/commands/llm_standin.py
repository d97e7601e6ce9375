"""`manage.py llm_standin --port P [--host H] [--latency-ms N] [--chunk-ms N] [--failure-rate F] [--failure-status S]`

Serves the OpenAI-compatible stand-in upstream (apps/llm/standin.py) with uvicorn until Ctrl-C: point a provider
of kind `openai_compatible` at the printed base URL. Failures can be scripted at run time through
`POST /standin/control`; `GET /standin/stats` counts what it answered.
"""

from django.core.management.base import BaseCommand, CommandError

from apps.llm.standin import StandIn, uvicorn_config


class Command(BaseCommand):
    help = "Serve an OpenAI-compatible stand-in upstream (scripted latency and failures) for tests and benchmarks."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--latency-ms", type=float, default=0.0, help="added before every answer")
        parser.add_argument("--chunk-ms", type=float, default=0.0, help="between stream chunks")
        parser.add_argument("--failure-rate", type=float, default=0.0, help="share of calls that fail, 0 to 1")
        parser.add_argument("--failure-status", type=int, default=503, help="HTTP status of a scripted failure")
        parser.add_argument("--seed", type=int, default=None, help="seed of the failure draws")

    def handle(self, *args, **options):
        import uvicorn  # why: a server only this command starts

        if not 0 <= options["failure_rate"] <= 1:
            raise CommandError("--failure-rate is a share from 0 to 1.")
        if options["latency_ms"] < 0 or options["chunk_ms"] < 0:
            raise CommandError("Latencies cannot be negative.")
        standin = StandIn(latency_ms=options["latency_ms"], chunk_ms=options["chunk_ms"],
                          failure_rate=options["failure_rate"], failure_status=options["failure_status"],
                          seed=options["seed"])
        self.stdout.write(f"Stand-in upstream at http://{options['host']}:{options['port']}/v1 (Ctrl-C stops it)")
        self.stdout.flush()
        # httptools parses HTTP in C: 27 % less CPU per request than h11 at 500 req/s (BENCHMARKS.md), CPU the
        # stand-in takes from the gateway it stands behind when both share a machine
        uvicorn.Server(uvicorn_config(standin, host=options["host"], port=options["port"], http="httptools")).run()
