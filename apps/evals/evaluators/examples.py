"""An example custom evaluator (documented in docs/evals.md). Enable it with
EVALS_CUSTOM_EVALUATORS = ["apps.evals.evaluators.examples"] or an entry point."""

from apps.evals.evaluators import Score, evaluator


@evaluator("polite_closing", label="Ends politely (example)", default_threshold=1.0)
def polite_closing(case, params):
    """The answer ends with one of the given closings."""
    endings = tuple(params.get("endings") or ("Thanks!", "Thank you.", "Best regards."))
    ok = case.output.rstrip().endswith(endings)
    return Score(1.0 if ok else 0.0, "" if ok else f"does not end with one of {', '.join(endings)}")
