from django.apps import AppConfig


class CostsConfig(AppConfig):
    name = "apps.costs"
    label = "costs"

    def ready(self):
        from apps.costs.ownership import register_costs_counters

        register_costs_counters()
