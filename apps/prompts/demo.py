"""Demo catalog for `make run`: a dozen prompts across two teams, several versions each, labels, label
history, a rollback and one pending promotion request. Idempotent: prompts that exist are left alone.

    seed_demo_prompts(people, teams)   # the dicts returned by portal.demo.seed_demo_accounts()
"""

from __future__ import annotations

from django.db import transaction

from apps.core.request_context import acting_as
from apps.prompts.content import Draft
from apps.prompts.models import Prompt, PromptKind, PromptPolicy
from apps.prompts.services import (
    label_set,
    policy_set,
    promotion_request_approve,
    promotion_request_expedite,
    promotion_request_open,
    prompt_create,
    version_create,
)

TRIAGE_SCHEMA = {
    "type": "object", "required": ["customer", "ticket"],
    "properties": {"customer": {"type": "string"}, "ticket": {"type": "string", "maxLength": 8000},
                   "tone": {"enum": ["calm", "warm", "brisk"]}},
}
ESCALATION_FORMAT = {"type": "json_schema", "json_schema": {"name": "escalation", "schema": {
    "type": "object", "required": ["escalate", "reason"],
    "properties": {"escalate": {"type": "boolean"}, "reason": {"type": "string"},
                   "queue": {"enum": ["billing", "technical", "legal", "none"]}}}}}

# name, team, kind, description, tags, [(content, config, commit message)], release plan
# release plan: list of ("production", version index) / ("staging", i) / ("pending", i) / ("rollback", i)
CATALOG = [
    ("shared/tone", "support-ai", PromptKind.TEXT, "House style: the tone every support answer uses.",
     ["shared", "style"], [
         ("Answer in a {{ tone }} tone. Be concrete; never blame the customer.", {}, "first tone guide"),
         ("Answer in a {{ tone }}, plain-spoken tone. Be concrete, use short sentences and never blame the "
          "customer.", {}, "shorter sentences"),
     ], [("production", 0), ("production", 1)]),
    ("shared/safety-preamble", "support-ai", PromptKind.TEXT, "Refusal rules shared by all assistants.",
     ["shared", "safety"], [
         ("Do not give legal, medical or financial advice. If asked, say you cannot help with that and offer a "
          "human agent.", {}, "initial rules"),
     ], [("production", 0)]),
    ("support/triage-summary", "support-ai", PromptKind.TEXT, "Summarises a ticket for the agent who picks it up.",
     ["support", "summary"], [
         ("Summarise this ticket for {{ customer }}:\n<ticket>\n{{ ticket }}\n</ticket>",
          {"model": "local-extractive", "temperature": 0.3, "max_tokens": 300}, "first version"),
         ('{% include_prompt "shared/tone" %}\n\nSummarise this ticket for {{ customer }} in three bullet points:'
          "\n<ticket>\n{{ ticket }}\n</ticket>", {"model": "local-extractive", "temperature": 0.2, "max_tokens": 300},
          "bullet points, shared tone"),
         ('{% include_prompt "shared/tone" %}\n\nSummarise this ticket for {{ customer }} in three bullet points, '
          "then name the product area.\n<ticket>\n{{ ticket }}\n</ticket>",
          {"model": "local-extractive", "temperature": 0.2, "max_tokens": 350}, "add the product area"),
     ], [("production", 0), ("production", 1), ("staging", 2), ("pending", 2)]),
    ("support/reply-draft", "support-ai", PromptKind.CHAT, "Drafts a first reply the agent edits before sending.",
     ["support", "reply"], [
         ([{"role": "system", "content": "You draft replies for the support desk of {{ product }}."},
           {"role": "user", "content": "{{ message }}"}], {"model": "local-extractive", "max_tokens": 400},
          "first draft"),
         ([{"role": "system", "content": "You draft replies for the support desk of {{ product }}. "
                                         "Keep replies under 120 words and end with a clear next step."},
           {"role": "user", "content": "{{ message }}"}], {"model": "local-extractive", "max_tokens": 300},
          "shorter replies with a next step"),
     ], [("production", 0), ("production", 1), ("rollback", 0)]),
    ("support/escalation-classifier", "support-ai", PromptKind.CHAT, "Decides whether a ticket needs a human.",
     ["support", "classifier"], [
         ([{"role": "system", "content": "Decide whether this ticket must go to a human agent."},
           {"role": "user", "content": "<ticket>{{ ticket }}</ticket>"}],
          {"model": "local-extractive", "temperature": 0, "response_format": "json_object"}, "first classifier"),
         ([{"role": "system", "content": "Decide whether this ticket must go to a human agent and which queue. "
                                         "Answer with JSON only."},
           {"role": "user", "content": "<ticket>{{ ticket }}</ticket>"}],
          {"model": "local-extractive", "temperature": 0, "response_format": ESCALATION_FORMAT}, "structured output"),
     ], [("production", 1)]),
    ("support/refund-policy-qa", "support-ai", PromptKind.TEXT, "Answers refund questions from the policy text.",
     ["support", "rag"], [
         ("Answer the question using only the policy below.\nContext:\n{{ policy }}\n\nQuestion: <question>"
          "{{ question }}</question>", {"model": "local-extractive"}, "first version"),
     ], [("staging", 0)]),
    ("support/csat-summary", "support-ai", PromptKind.TEXT, "Weekly digest of customer satisfaction comments.",
     ["support", "reporting"], [
         ("Summarise these customer comments for the weekly report:\n---\n{{ comments }}\n---", {},
          "first version"),
         ("Summarise these customer comments for the weekly report. Group them by theme and count each theme.\n"
          "---\n{{ comments }}\n---", {"temperature": 0.4}, "group by theme"),
     ], []),
    ("search/query-rewrite", "search", PromptKind.TEXT, "Rewrites a user query into a search query.",
     ["search", "rewrite"], [
         ("Rewrite as a search query: {{ query }}", {"temperature": 0}, "first version"),
         ("Rewrite the user's question as a keyword search query.\n<question>{{ query }}</question>",
          {"temperature": 0}, "delimit the question"),
         ("Rewrite the user's question as a keyword search query. Keep product names exactly as written.\n"
          "<question>{{ query }}</question>", {"temperature": 0, "max_tokens": 64}, "keep product names"),
     ], [("production", 1), ("production", 2)]),
    ("search/rerank-instructions", "search", PromptKind.TEXT, "Instructions for the passage re-ranker.",
     ["search", "rerank"], [
         ("Rank the passages by how well they answer <question>{{ query }}</question>.\n{{ passages }}", {},
          "first version"),
     ], []),
    ("search/answer-with-citations", "search", PromptKind.CHAT, "Grounded answer with numbered citations.",
     ["search", "rag"], [
         ([{"role": "system", "content": "Answer from the context only and cite passages as [n]."},
           {"role": "user", "content": "Context:\n{{ context }}\n\nQuestion: {{ question }}"}],
          {"model": "local-extractive", "max_tokens": 400}, "first version"),
         ([{"role": "system", "content": "Answer from the context only and cite passages as [n]. "
                                         "If the context does not answer, say so."},
           {"role": "user", "content": "Context:\n{{ context }}\n\nQuestion: {{ question }}"}],
          {"model": "local-extractive", "max_tokens": 400}, "say when the context does not answer"),
     ], [("production", 0)]),
    ("search/title-generator", "search", PromptKind.TEXT, "A short title for a knowledge-base article.",
     ["search", "kb"], [
         ("Write a title of at most eight words for this article:\n---\n{{ article }}\n---", {}, "first version"),
     ], []),
    ("search/snippet-summary", "search", PromptKind.TEXT, "One-sentence summary shown under each search hit.",
     ["search", "summary"], [
         ("Summarise in one sentence:\n---\n{{ document }}\n---", {"max_tokens": 60}, "first version"),
     ], [("staging", 0)]),
]

# Who writes, requests and approves, per team (the search team has a single owner: its releases are
# expedited by the admin, which the demo shows on purpose).
CREW = {"support-ai": {"author": "evan", "approver": "olivia"}, "search": {"author": "erin", "approver": None}}


def _draft(kind: str, content, config: dict) -> Draft:
    if kind == PromptKind.CHAT:
        return Draft(kind=kind, messages=content, config=config)
    return Draft(kind=kind, template=content, config=config)


def _release(prompt, version, people, crew, reason, *, pending=False):
    author = people[crew["author"]]
    request = promotion_request_open(prompt=prompt, version=version, actor=author, reason=reason)
    if pending:
        return request
    reason = "Demo seed: the search team has one owner and no second reviewer yet."
    if crew["approver"]:
        approver = people[crew["approver"]]
        with acting_as(approver):
            outcome = promotion_request_approve(request=request, user=approver, comment="Looks good.")
        if outcome.applied:
            return request
        # Another app's gate (evals, reviews) holds it in this environment: the demo still needs a production.
        reason = f"Demo seed: waiting on {', '.join(outcome.waiting_on)} in this environment."
    admin = people["admin"]
    with acting_as(admin):
        promotion_request_expedite(request=request, user=admin, reason=reason)
    return request


@transaction.atomic
def seed_demo_prompts(people: dict, teams: dict) -> int:
    """Create the demo catalog; returns how many prompts were created (0 when already there)."""
    created = 0
    for name, team_slug, kind, description, tags, versions, plan in CATALOG:
        if Prompt.objects.filter(name=name).exists() or team_slug not in teams:
            continue
        crew = CREW[team_slug]
        author = people[crew["author"]]
        with acting_as(author):
            content, config, message = versions[0]
            prompt = prompt_create(team=teams[team_slug], name=name, kind=kind, description=description, tags=tags,
                                   actor=author, draft=_draft(kind, content, config), commit_message=message)
            numbered = [prompt.versions.get()]
            for content, config, message in versions[1:]:
                numbered.append(version_create(prompt=prompt, draft=_draft(kind, content, config),
                                               commit_message=message, actor=author).version)
            for step, index in plan:
                version = numbered[index]
                if step == "staging":
                    label_set(prompt=prompt, label="staging", version=version, actor=author,
                              reason="ready for QA on staging")
                elif step == "production":
                    _release(prompt, version, people, crew, f"Release v{version.number}: {version.commit_message}")
                elif step == "rollback":
                    _release(prompt, version, people, crew, "Roll back: agents report the shorter replies drop "
                                                            "order numbers.")
                elif step == "pending":
                    _release(prompt, version, people, crew, "Agents asked to see the product area at a glance.",
                             pending=True)
        created += 1
    seed_demo_policies(people, teams)
    return created


def seed_demo_policies(people: dict, teams: dict) -> None:
    """The support team requires one approval and treats lint warnings as advisory (the defaults, made explicit)."""
    team = teams.get("support-ai")
    if team is None or PromptPolicy.objects.filter(team=team).exists():
        return
    with acting_as(people.get("olivia")):
        policy_set(team=team, approvals_required=1, actor=people.get("olivia"))
