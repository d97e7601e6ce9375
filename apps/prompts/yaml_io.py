"""Export and import a team's prompts as YAML, for keeping prompts in git.

Import validates every entry first (names, types, templates, schemas, configs, includes, labels) and reports
each problem by its place in the file (`prompts[2] support/x: versions[1]: …`); only when all are good does
it write, in one transaction, through the same services as the browser (so each change is audited and
identical content makes no new version). Protected labels (production) are never moved by an import:
the report says which differ, to be promoted through a request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import Action, can
from apps.audit.services import audit_record
from apps.prompts import selectors, services
from apps.prompts.content import Draft, check_draft
from apps.prompts.models import LATEST, Prompt, PromptKind, validate_label_name, validate_prompt_name

FORMAT = "genai-portal/prompts@1"
MAX_BYTES = 5 * 1024 * 1024


class _Literal(str):
    pass


class _Dumper(yaml.SafeDumper):
    pass


def _literal(dumper, value):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(_Literal, _literal)


def export_team(team: Team, *, actor=None) -> str:
    prompts = []
    for prompt in Prompt.objects.filter(team=team).order_by("name"):
        labels = {lb.name: lb.version.number for lb in selectors.label_list(prompt=prompt) if lb.name != LATEST}
        versions = []
        for v in prompt.versions.order_by("number"):
            entry: dict = {"number": v.number, "commit_message": v.commit_message}
            if prompt.kind == PromptKind.CHAT:
                entry["messages"] = [{"role": m["role"], "content": _Literal(m["content"])} for m in v.messages]
            else:
                entry["template"] = _Literal(v.template)
            if v.variables_schema:
                entry["variables_schema"] = v.variables_schema
            if v.config:
                entry["config"] = v.config
            entry["content_hash"] = v.content_hash
            versions.append(entry)
        prompts.append({"name": prompt.name, "type": prompt.kind, "description": _Literal(prompt.description),
                        "tags": list(prompt.tags), "labels": labels, "versions": versions})
    document = {"format": FORMAT, "team": team.slug, "exported_at": timezone.now().isoformat(timespec="seconds"),
                "prompts": prompts}
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


@dataclass
class ImportProblem:
    where: str
    message: str


class ImportFailed(Exception):
    def __init__(self, errors: list[ImportProblem]):
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


@dataclass
class ImportReport:
    dry_run: bool = False
    created_prompts: list[str] = field(default_factory=list)
    created_versions: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    labels_moved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Entry:
    index: int
    name: str
    kind: str
    description: str
    tags: list
    drafts: list[tuple[int, Draft, str]]  # (file number, draft, commit message)
    labels: dict
    existing: Prompt | None
    includes: set[str]

    @property
    def where(self) -> str:
        return f"prompts[{self.index}] {self.name}"


def _parse(text: str) -> tuple[dict | None, list[ImportProblem]]:
    if len(text.encode()) > MAX_BYTES:
        return None, [ImportProblem("file", f"The file is larger than {MAX_BYTES // 1024 // 1024} MB.")]
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        return None, [ImportProblem(where, f"Not valid YAML: {getattr(exc, 'problem', None) or exc}")]
    if not isinstance(document, dict) or not isinstance(document.get("prompts"), list):
        return None, [ImportProblem("file", "Expected a mapping with a 'prompts' list (as the export writes).")]
    return document, []


def _validate(team: Team, document: dict, actor) -> tuple[list[_Entry], list[ImportProblem]]:
    errors: list[ImportProblem] = []
    if document.get("format") not in (None, FORMAT):
        errors.append(ImportProblem("format", f"Unknown format {document.get('format')!r}; expected {FORMAT}."))
    if document.get("team") not in (None, team.slug):
        errors.append(ImportProblem("team", f"This file is for team {document.get('team')!r}, not {team.slug!r}."))
    entries: list[_Entry] = []
    names_in_file: dict[str, int] = {}
    for index, raw in enumerate(document["prompts"]):
        where = f"prompts[{index}]"
        if not isinstance(raw, dict):
            errors.append(ImportProblem(where, "Each prompt is a mapping with name, type and versions."))
            continue
        name = str(raw.get("name") or "").strip()
        where = f"{where} {name or '(no name)'}"
        try:
            validate_prompt_name(name)
        except ValidationError as exc:
            errors.append(ImportProblem(where, f"name: {' '.join(exc.messages)}"))
            continue
        if name in names_in_file:
            errors.append(ImportProblem(where, f"name: also used by prompts[{names_in_file[name]}]."))
            continue
        names_in_file[name] = index
        existing = Prompt.objects.filter(name=name).first()
        kind = raw.get("type") or (existing.kind if existing else PromptKind.TEXT)
        if kind not in PromptKind.values:
            errors.append(ImportProblem(where, f"type: choose text or chat, not {kind!r}."))
            continue
        if existing is not None and existing.team_id != team.pk:
            errors.append(ImportProblem(where, "belongs to another team; it cannot be imported here."))
            continue
        if existing is not None and existing.kind != kind:
            errors.append(ImportProblem(where, f"type: the prompt is a {existing.kind} prompt, the file says {kind}."))
            continue
        tags = raw.get("tags") or []
        if not isinstance(tags, list):
            errors.append(ImportProblem(where, "tags: give a list."))
            tags = []
        versions = raw.get("versions") or []
        if not isinstance(versions, list) or (existing is None and not versions):
            errors.append(ImportProblem(where, "versions: give a list with at least one version."))
            continue
        drafts, includes = [], set()
        for vi, v in enumerate(versions):
            vwhere = f"{where}: versions[{vi}]"
            if not isinstance(v, dict):
                errors.append(ImportProblem(vwhere, "each version is a mapping with template (or messages)."))
                continue
            draft = Draft(kind=kind, template=v.get("template") or "", messages=v.get("messages") or [],
                          variables_schema=v.get("variables_schema"), config=v.get("config") or {})
            try:
                checked = check_draft(draft, f"{name} versions[{vi}]")
            except ValidationError as exc:
                for fname, messages in exc.message_dict.items():
                    errors += [ImportProblem(vwhere, f"{fname}: {m}") for m in messages]
                continue
            includes |= {r.name for r in checked.references}
            number = v.get("number", vi + 1)
            drafts.append((number, draft, str(v.get("commit_message") or "imported")))
        labels = raw.get("labels") or {}
        if not isinstance(labels, dict):
            errors.append(ImportProblem(where, "labels: give a mapping of label → version number."))
            labels = {}
        numbers = {d[0] for d in drafts}
        for label, number in labels.items():
            try:
                validate_label_name(str(label))
            except ValidationError as exc:
                errors.append(ImportProblem(f"{where}: labels.{label}", " ".join(exc.messages)))
                continue
            if number not in numbers:
                errors.append(ImportProblem(f"{where}: labels.{label}",
                                            f"points at version {number}, which is not in the file's versions."))
        entries.append(_Entry(index, name, kind, str(raw.get("description") or ""), tags, drafts, labels,
                              existing, includes))
    known = set(names_in_file)
    for entry in entries:
        for include in sorted(entry.includes - known):
            target = Prompt.objects.filter(name=include).first()
            if target is None:
                errors.append(ImportProblem(entry.where, f"include_prompt {include!r}: no such prompt, here or in "
                                                         "the portal."))
            elif actor is not None and not can(actor, Action.VIEW, target):
                errors.append(ImportProblem(entry.where, f"include_prompt {include!r}: you may not view that prompt."))
    return _in_dependency_order(entries), errors


def _in_dependency_order(entries: list[_Entry]) -> list[_Entry]:
    by_name = {e.name: e for e in entries}
    ordered, seen = [], set()

    def visit(entry: _Entry, stack: tuple = ()) -> None:
        if entry.name in seen or entry.name in stack:
            return
        for include in sorted(entry.includes):
            if include in by_name:
                visit(by_name[include], (*stack, entry.name))
        seen.add(entry.name)
        ordered.append(entry)

    for entry in entries:
        visit(entry)
    return ordered


class _DryRun(Exception):
    pass


def import_team(team: Team, text: str, *, actor=None, dry_run: bool = False) -> ImportReport:
    """Validate everything, then write everything in one transaction (or roll it back for a dry run)."""
    document, errors = _parse(text)
    if errors:
        raise ImportFailed(errors)
    entries, errors = _validate(team, document, actor)
    if errors:
        raise ImportFailed(errors)
    report = ImportReport(dry_run=dry_run)
    try:
        with transaction.atomic():
            _write(team, entries, actor, report)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    except ValidationError as exc:  # a rule only the write could see (e.g. an include cycle)
        raise ImportFailed([ImportProblem(getattr(exc, "import_where", "file"), m) for m in exc.messages])
    return report


def _write(team: Team, entries: list[_Entry], actor, report: ImportReport) -> None:
    for entry in entries:
        try:
            prompt = entry.existing
            if prompt is None:
                prompt = services.prompt_create(team=team, name=entry.name, kind=entry.kind,
                                                description=entry.description, tags=entry.tags, actor=actor)
                report.created_prompts.append(entry.name)
            else:
                services.prompt_update(prompt=prompt, description=entry.description, tags=entry.tags, actor=actor)
            by_number = {}
            for number, draft, message in entry.drafts:
                result = services.version_create(prompt=prompt, draft=draft, commit_message=message, actor=actor)
                by_number[number] = result.version
                label = f"{entry.name} v{result.version.number}"
                (report.created_versions if result.created else report.unchanged).append(label)
            for label, number in entry.labels.items():
                version = by_number[number]
                if label == LATEST:
                    continue
                if services.is_protected(prompt, label):
                    current = prompt.labels.filter(name=label).values_list("version__number", flat=True).first()
                    if current != version.number:
                        report.notes.append(f"{entry.name}: {label} stays at {current or 'nothing'}; the file says "
                                            f"v{version.number}. Open a promotion request to move it.")
                    continue
                if prompt.labels.filter(name=label, version=version).exists():
                    continue
                services.label_set(prompt=prompt, label=label, version=version, actor=actor, reason="YAML import")
                report.labels_moved.append(f"{entry.name}: {label} → v{version.number}")
        except ValidationError as exc:
            exc.import_where = entry.where
            raise
    audit_record(action="prompt.import", obj=team, object_repr=f"prompt import into {team.name}",
                 changes={"created_prompts": report.created_prompts, "created_versions": report.created_versions,
                          "labels_moved": report.labels_moved, "dry_run": report.dry_run},
                 actor=actor)
