"""The one beat schedule. Apps add their periodic tasks here, by task name (no imports of apps).

A plain dict that portal/celery.py assigns: reading `app.conf` at import time would load Django's settings
before a script (bench/common.py) has had a chance to point DATABASE_URL elsewhere.
"""

from celery.schedules import crontab

BEAT_SCHEDULE = dict(
    {
        "worker-heartbeat-probe": {"task": "portal.tasks.heartbeat_probe", "schedule": 30.0},
        "audit-chain-verify-nightly": {
            "task": "apps.audit.tasks.audit_chain_verify_scheduled",
            "schedule": crontab(hour=3, minute=0),
        },
        # costs: budget periods/alerts, anomalies, stale reservations, rollup reconciliation, retention
        "costs-budgets-check": {"task": "apps.costs.tasks.budgets_check_task", "schedule": crontab(minute="*/15")},
        "costs-anomalies-detect": {"task": "apps.costs.tasks.anomalies_detect_task", "schedule": crontab(minute=5)},
        "costs-reservations-sweep": {"task": "apps.costs.tasks.reservations_sweep_task", "schedule": 300.0},
        "costs-rollups-reconcile": {
            "task": "apps.costs.tasks.rollups_reconcile_task", "schedule": crontab(hour=0, minute=20),
        },
        "costs-raw-events-purge": {"task": "apps.costs.tasks.raw_events_purge_task", "schedule": crontab(hour=2, minute=40)},
        # gateway: notices to the creator and the team's owners before a key expires
        "gateway-keys-expiry-notify": {
            "task": "apps.gateway.tasks.gateway_keys_expiry_notify_task", "schedule": crontab(hour=6, minute=10),
        },
        # reviews: expiry notices and expiry, condition re-checks, material-change flags
        "reviews-expiry-sweep": {"task": "apps.reviews.tasks.reviews_expiry_sweep_task", "schedule": crontab(hour=6, minute=0)},
        "reviews-conditions-recheck": {"task": "apps.reviews.tasks.reviews_conditions_recheck_task", "schedule": crontab(minute=15)},
        "reviews-material-change-scan": {
            "task": "apps.reviews.tasks.reviews_material_change_scan_task", "schedule": crontab(minute=45),
        },
        # experiments: tell the owners when an arm of a running experiment wins or is less safe (once per arm)
        "experiments-verdicts": {"task": "apps.experiments.tasks.experiments_verdicts_task",
                                 "schedule": crontab(minute="*/15")},
        # experiments: sample-ratio-mismatch alarm (units per arm against the weights, chi-square p < 0.001)
        "experiments-srm": {"task": "apps.experiments.tasks.experiments_srm_task", "schedule": 300.0},
        # red team: re-queue campaigns whose worker died (only the attacks not done yet run again)
        "redteam-campaigns-resume-stalled": {"task": "apps.redteam.tasks.campaigns_resume_stalled_task",
                                             "schedule": 60.0},
        # incidents: restore expired rate limits, remind about features still switched off past their expiry
        "incidents-mitigations-expiry": {"task": "apps.incidents.tasks.mitigations_expiry_sweep_task", "schedule": 60.0},
        # incidents: detection rules on the portal's signals; owners of action items that fall due
        "incidents-detection-rules": {"task": "apps.incidents.tasks.detection_rules_evaluate_task", "schedule": 30.0},
        "incidents-action-items-remind": {
            "task": "apps.incidents.tasks.action_items_remind_task", "schedule": crontab(hour=7, minute=0),
        },
        # rag: re-queue indexing jobs and retrieval eval runs whose worker stopped (stale heartbeat)
        "rag-indexing-sweep-stuck": {"task": "apps.rag.tasks.indexing_sweep_stuck_task", "schedule": 60.0},
        # gateway: sampled bodies past their retention (GATEWAY_BODY_RETENTION_DAYS)
        "gateway-bodies-sweep": {"task": "apps.gateway.tasks.gateway_bodies_sweep_task", "schedule": crontab(hour=2, minute=50)},
        # gateway: SLI minute/hour counts past their retention (GATEWAY_SLI_MINUTE_RETENTION_HOURS, ..._HOUR_RETENTION_DAYS)
        "gateway-sli-prune": {"task": "apps.gateway.tasks.gateway_sli_prune_task", "schedule": crontab(minute=25)},
        # slos: burn rates, budgets and multi-window alerts of every active SLO
        "slos-evaluate": {"task": "apps.slos.tasks.slos_evaluate_task", "schedule": 60.0},
        # evals: re-queue eval runs that stopped making progress (dead worker): only missing units are redone
        "evals-runs-resume-stalled": {"task": "apps.evals.tasks.eval_runs_resume_stalled_task", "schedule": 60.0},
        # scorecards: every use case's KPIs from the rollups; every 4 minutes so that with a ~35 s refresh (500 use cases)
        # a figure is at most 5 minutes old
        "scorecards-refresh": {"task": "apps.scorecards.tasks.scorecards_refresh_task", "schedule": 240.0},
    }
)
