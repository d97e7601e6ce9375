from django.db import migrations

# A copy of rules.CONTROL_LIBRARY at the time of writing: migrations never import app code.
CONTROLS = {
    "baseline_eval": ("Baseline eval", "An eval run on a representative dataset before production."),
    "pii_redaction": ("PII redaction", "Personal data is redacted from prompts, logs and the RAG corpus."),
    "prompt_injection_red_team": ("Prompt-injection red team", "A red-team exercise against injected instructions."),
    "groundedness_threshold": ("Groundedness threshold", "Answers meet a groundedness score threshold in evals."),
    "disclosure_to_users": ("Disclosure to users", "People are told they interact with AI / content is AI-made."),
    "human_oversight_design": ("Human-oversight design", "Documented review points, stop button, escalation."),
    "incident_runbook": ("Incident runbook", "Who does what when it misbehaves; kill switch tested."),
    "vendor_no_training": ("Vendor no-training terms", "Contract forbids the vendor training on our data."),
    "log_retention": ("Log retention", "Inputs/outputs kept only as long as policy allows, after redaction."),
    "bias_eval": ("Bias and fairness eval", "Outcomes compared across protected groups."),
    "dpia": ("Data-protection impact assessment", "A DPIA signed by the privacy seat."),
}


def seed(apps, schema_editor):
    Control = apps.get_model("reviews", "Control")
    for key, (name, description) in CONTROLS.items():
        Control.objects.get_or_create(key=key, defaults={"name": name, "description": description})
    ReviewPolicy = apps.get_model("reviews", "ReviewPolicy")
    if not ReviewPolicy.objects.exists():
        ReviewPolicy.objects.create()


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
