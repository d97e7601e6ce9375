"""Forms parse; services validate. Service ValidationErrors land next to the field they name."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from apps.core.forms import apply_service_errors
from apps.core.safe_input import form_json
from apps.llm.selectors import chat_model_choices, embedding_model_choices
from apps.rag.config import CHUNK_STRATEGIES, FUSIONS, LEGS, ChunkingConfig, RetrievalConfig
from apps.rag.models import DataClass


class ServiceErrorsMixin:
    def apply_errors(self, exc: ValidationError) -> None:
        apply_service_errors(self, exc)


def _chat_models():
    return chat_model_choices()


class ChunkingFields(forms.Form):
    chunking_strategy = forms.ChoiceField(choices=list(CHUNK_STRATEGIES.items()), label="Chunking",
                                          initial="recursive")
    chunking_chunk_tokens = forms.IntegerField(label="Chunk size (tokens)", initial=200, min_value=1)
    chunking_overlap_tokens = forms.IntegerField(label="Overlap (tokens, fixed windows)", initial=30, min_value=0)

    def chunking(self) -> dict:
        return {"strategy": self.cleaned_data["chunking_strategy"],
                "chunk_tokens": self.cleaned_data["chunking_chunk_tokens"],
                "overlap_tokens": self.cleaned_data["chunking_overlap_tokens"]}


class CollectionForm(ServiceErrorsMixin, ChunkingFields):
    team = forms.ModelChoiceField(queryset=None, empty_label=None)
    name = forms.CharField(max_length=120)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    data_class = forms.ChoiceField(choices=DataClass.choices, initial=DataClass.INTERNAL,
                                   help_text="Feeds the use-case review; PII and special category need a review.")
    embedding_model = forms.ModelChoiceField(queryset=None, empty_label=None,
                                             help_text="Fixed once created: the stored vectors depend on it.")
    answer_model = forms.ModelChoiceField(queryset=None, required=False, empty_label="(offline extractive)")

    field_order = ["team", "name", "description", "data_class", "embedding_model", "answer_model",
                   "chunking_strategy", "chunking_chunk_tokens", "chunking_overlap_tokens"]

    def __init__(self, *args, teams=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
        self.fields["embedding_model"].queryset = embedding_model_choices()
        self.fields["answer_model"].queryset = _chat_models()


class CollectionSettingsForm(ServiceErrorsMixin, ChunkingFields):
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    data_class = forms.ChoiceField(choices=DataClass.choices)
    answer_model = forms.ModelChoiceField(queryset=None, required=False, empty_label="(offline extractive)")
    answer_prompt = forms.CharField(max_length=200, required=False,
                                    help_text="Catalog prompt for answers; empty uses rag/grounded-answer.")
    retrieval_json = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), label="Retrieval defaults (JSON)",
                                     help_text="k, candidates, k1, b, ef_search, fusion (zscore, convex or rrf), rrf_k, "
                                               "bm25_weight, vector_weight, alpha, mmr, mmr_lambda, rerank")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["answer_model"].queryset = _chat_models()

    def clean_retrieval_json(self):
        value = form_json(self.cleaned_data["retrieval_json"] or "{}")
        if not isinstance(value, dict):
            raise ValidationError("Write a JSON object, e.g. {\"k\": 8}.")
        return value


def settings_initial(collection) -> dict:
    chunking = ChunkingConfig.from_dict(collection.chunking)
    return {"description": collection.description, "data_class": collection.data_class,
            "answer_model": collection.answer_model_id, "answer_prompt": collection.answer_prompt,
            "chunking_strategy": chunking.strategy, "chunking_chunk_tokens": chunking.chunk_tokens,
            "chunking_overlap_tokens": chunking.overlap_tokens,
            "retrieval_json": json.dumps(RetrievalConfig.from_dict(collection.retrieval).as_dict(), indent=2)}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)] if data else []


class UploadForm(forms.Form):
    file = MultipleFileField(label="Files", help_text=".txt, .md, .html or .pdf; a file with the same name "
                                                      "replaces the document (re-indexed only if it changed).")


class ImportForm(forms.Form):
    file = forms.FileField(label="JSONL corpus", help_text='One {"_id", "title", "text", "metadata"} per line '
                                                          "(BEIR corpus.jsonl).")
    remove_missing = forms.BooleanField(required=False, label="Delete documents that are not in the file")


class ShareForm(forms.Form):
    username = forms.CharField(max_length=150)
    permission = forms.ChoiceField(choices=[("view", "Read"), ("change", "Change")])


class PlaygroundForm(forms.Form):
    """One retrieval configuration; the playground shows two side by side (prefix a_ and b_)."""

    mode = forms.ChoiceField(choices=[(leg, leg) for leg in LEGS], initial="hybrid")
    k = forms.IntegerField(min_value=1, max_value=100, initial=8)
    candidates = forms.IntegerField(min_value=1, max_value=1000, initial=100, label="candidates per leg")
    k1 = forms.FloatField(min_value=0, max_value=5, label="BM25 k1")
    b = forms.FloatField(min_value=0, max_value=1, label="BM25 b")
    ef_search = forms.IntegerField(min_value=1, max_value=1000, label="hnsw.ef_search")
    fusion = forms.ChoiceField(choices=list(FUSIONS.items()))
    rrf_k = forms.IntegerField(min_value=1, max_value=1000, label="RRF k")
    bm25_weight = forms.FloatField(min_value=0, label="BM25 weight (RRF)")
    vector_weight = forms.FloatField(min_value=0, label="vector weight (RRF)")
    alpha = forms.FloatField(min_value=0, max_value=1, label="α vector share (zscore, convex)")
    mmr = forms.BooleanField(required=False, label="MMR diversification")
    mmr_lambda = forms.FloatField(min_value=0, max_value=1, label="MMR λ")
    rerank = forms.BooleanField(required=False, label="LLM rerank")
    filters = forms.CharField(required=False, label="metadata filter (JSON)",
                              widget=forms.TextInput(attrs={"placeholder": '{"team": "support"}'}))

    def clean_filters(self):
        raw = (self.cleaned_data.get("filters") or "").strip()
        if not raw:
            return {}
        value = form_json(raw)
        if not isinstance(value, dict):
            raise ValidationError('Write a JSON object, e.g. {"team": "support"}.')
        return value

    def config(self, base: RetrievalConfig) -> RetrievalConfig:
        data = {k: v for k, v in self.cleaned_data.items() if v is not None}
        try:
            return base.replace(**data)
        except ValidationError as exc:
            apply_service_errors(self, exc)
            raise


def playground_initial(config: RetrievalConfig) -> dict:
    data = config.as_dict()
    data["filters"] = json.dumps(data["filters"]) if data["filters"] else ""
    return data


class DatasetImportForm(ServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=120)
    queries = forms.FileField(label="queries.jsonl")
    qrels = forms.FileField(label="qrels (.tsv)", help_text="query-id, corpus-id, score; tab-separated")
    split = forms.CharField(max_length=40, required=False, help_text="e.g. test")


class EvalRunForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=None, empty_label=None)
    label = forms.CharField(max_length=120, required=False)

    def __init__(self, *args, datasets=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
