from django.db import migrations

# The starting definitions (admins edit them in the Django admin); migrations never import app code.
LEVELS = {
    1: ("Critical: harm happening now, many users or data exposed",
        "Unsafe content or personal data reaching users, a regulated decision wrong at scale, or the feature down "
        "for everyone.", "Page the commander and the owning team now (inbox + e-mail); mitigate within 60 minutes."),
    2: ("Major: a live feature is badly wrong or down for some",
        "Incorrect outputs users act on, a provider outage without fallback, spend running away.",
        "Page the commander and the owning team (inbox + e-mail); mitigate within 120 minutes."),
    3: ("Minor: degraded, a workaround exists",
        "Quality dropped on some inputs, a slow model, a budget alert.", "The commander's inbox; next working day."),
    4: ("Low: a near-miss or cosmetic",
        "Caught before users saw it, or no user impact.", "The commander's inbox; track in the review."),
}


def seed(apps, schema_editor):
    SeverityDefinition = apps.get_model("incidents", "SeverityDefinition")
    for level, (summary, definition, response) in LEVELS.items():
        SeverityDefinition.objects.get_or_create(level=level, defaults={"summary": summary, "definition": definition,
                                                                        "response": response})


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
