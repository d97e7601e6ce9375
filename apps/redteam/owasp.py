"""The OWASP Top 10 for LLM Applications (2025): the ids the report maps categories onto."""

from __future__ import annotations

OWASP_2025 = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM08": "Vector and Embedding Weaknesses",
    "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
}

INJECTION = ("LLM01",)
LEAKAGE = ("LLM02", "LLM07")


def owasp_label(code: str) -> str:
    name = OWASP_2025.get((code or "").upper())
    return f"{code.upper()} {name}" if name else (code or "unmapped")
