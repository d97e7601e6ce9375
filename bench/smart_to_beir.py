"""Convert a classic SMART test collection (CISI or MED, University of Glasgow IR test collections) to a BEIR
folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) for bench/rag_collections.py and `rag_eval`.

    python -m bench.smart_to_beir cisi /tmp/cisi-src /data/cisi   # CISI.ALL, CISI.QRY, CISI.REL in /tmp/cisi-src
    python -m bench.smart_to_beir med /tmp/med-src /data/med       # MED.ALL, MED.QRY, MED.REL

Download cisi.tar.gz / med.tar.gz from the Glasgow IR group's test-collection page
(ir.dcs.gla.ac.uk/resources/test_collections/) and untar them (docs/rag.md). Conversion: records split on
`.I`, each field's lines joined with single spaces; corpus `title` = `.T` (MED has none), `text` = `.W`;
queries keep `.W` only, and only the judged ones are written; every judgement has score 1.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

FIELD = re.compile(r"^\.([A-Z])(?:\s+(\S+))?\s*$")


def records(text: str) -> list[dict[str, str]]:
    """SMART records: {"I": id, "T": title, "W": text, …}, each field's lines joined by single spaces."""
    out: list[dict[str, str]] = []
    field = None
    for raw in text.replace("\r", "").splitlines():
        match = FIELD.match(raw)
        if match and match.group(1) == "I":
            out.append({"I": match.group(2)})
            field = None
        elif match:
            field = match.group(1)
            out[-1].setdefault(field, "")
        elif field and out:
            out[-1][field] = (out[-1][field] + " " + raw).strip()
    for record in out:
        for key, value in record.items():
            record[key] = " ".join(value.split())
    return out


def judgements(text: str, name: str) -> list[tuple[str, str]]:
    """(query id, document id): CISI.REL is `qid docid 0 0.0`, MED.REL `qid 0 docid 1`."""
    pairs = []
    for line in text.splitlines():
        parts = line.split()
        if parts:
            pairs.append((parts[0], parts[2] if name == "med" else parts[1]))
    return list(dict.fromkeys(pairs))


def convert(name: str, source: Path, target: Path) -> dict:
    prefix = name.upper()
    docs = records((source / f"{prefix}.ALL").read_text(encoding="latin-1"))
    queries = records((source / f"{prefix}.QRY").read_text(encoding="latin-1"))
    qrels = judgements((source / f"{prefix}.REL").read_text(encoding="latin-1"), name)
    judged = {q for q, _ in qrels}
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    with (target / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for d in docs:
            handle.write(json.dumps({"_id": d["I"], "title": d.get("T", ""), "text": d.get("W", "")}) + "\n")
    with (target / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for q in queries:
            if q["I"] in judged:
                handle.write(json.dumps({"_id": q["I"], "text": q.get("W", "")}) + "\n")
    with (target / "qrels" / "test.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for q, d in qrels:
            handle.write(f"{q}\t{d}\t1\n")
    return {"documents": len(docs), "queries": len(judged), "judgements": len(qrels)}


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("cisi", "med"):
        raise SystemExit("usage: python -m bench.smart_to_beir {cisi|med} SOURCE_DIR TARGET_DIR")
    print(json.dumps(convert(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))))
