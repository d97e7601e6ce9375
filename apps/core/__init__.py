"""The base layer: helpers every app shares (request context, htmx, input checks, caches, charts, metrics,
env settings, middleware, logging). It imports no app and never `portal` (docs/architecture.md)."""
