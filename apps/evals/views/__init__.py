"""Pages of evals, one module per purpose (home, datasets, evaluators, runs, gates, dashboards). Thin: parse,
call a selector or a service, render a page or a fragment."""

PAGE_SIZE = 50
