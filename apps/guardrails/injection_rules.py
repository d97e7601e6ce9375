"""Phrase rules for prompt injection: the wording attackers use, one regex per idea.

Each rule says what it found in plain words, so a reviewer can judge the finding. Rules run on
a normalised copy of the text (invisible characters removed, compatibility forms folded) so
"ig\u200bnore previous instructions" and full-width letters are still recognised.
"""

import re
from typing import NamedTuple

from .findings import InjectionKind


class PhraseRule(NamedTuple):
    kind: InjectionKind
    gates: tuple[str, ...]  # lower-case strings, one of which occurs in (or near) every match
    pattern: re.Pattern[str]  # case-insensitive, for any text
    lowered_pattern: re.Pattern[str] | None  # case-sensitive twin for lower-cased text: about 3x faster
    confidence: float
    explanation: str
    unless: InjectionKind | None = None  # dropped when it overlaps a finding of this kind


def _rule(
    kind: InjectionKind,
    gates: tuple[str, ...],
    pattern: str,
    confidence: float,
    explanation: str,
    unless: InjectionKind | None = None,
) -> PhraseRule:
    # Rules that tell "DAN" from "Dan" need the original case and get no lower-case twin.
    case_sensitive_part = "(?-i:" in pattern
    lowered = None if case_sensitive_part else re.compile(_lower_literals(pattern), re.MULTILINE)
    return PhraseRule(
        kind,
        gates,
        re.compile(pattern, re.IGNORECASE | re.MULTILINE),
        lowered,
        confidence,
        explanation,
        unless,
    )


def _lower_literals(pattern: str) -> str:
    """Lower-case the letters of a regex, leaving escapes such as \\S or \\W alone."""
    return re.sub(r"(\\.)|([A-Z])", lambda match: match.group(1) or match.group(2).lower(), pattern)


_IGNORE = (
    r"(?:ignore|ignoring|disregard|forget|skip|override|overrule|bypass|discard|abandon|set\s+aside|"
    r"throw\s+out|stop\s+following|do\s+not\s+follow|don'?t\s+follow|never\s+follow|do\s+not\s+obey)"
)
_DETERMINERS = r"(?:(?:all|any|every|each|the|your|these|those|of|its)\s+){0,3}"
_EARLIER = r"(?:previous|prior|above|earlier|preceding|foregoing|former|initial|original|system|developer|default|hidden|built-in)"
_RULES_NOUN = (
    r"(?:instructions?|prompts?|rules?|directions?|directives?|guidelines?|guidance|commands?|orders|"
    r"constraints?|programming|policies|policy|system\s+message)"
)
_WEAK_NOUN = r"(?:context|messages?|text|sentences?|content|conversation|input)"
_CONTROL_WORDS = r"(?:restrictions|limitations|limits|rules|filters|guidelines|boundaries|censorship|constraints|morals|ethics|policies|safeguards|safety)"

_IGNORE_GATES = (
    "ignor",
    "disregard",
    "forget",
    "skip",
    "overrid",
    "overrul",
    "bypass",
    "discard",
    "abandon",
    "aside",
    "throw out",
    "follow",
    "obey",
)
_VOID_GATES = (
    "apply",
    "void",
    "invalid",
    "cancel",
    "revoked",
    "obsolete",
    "null",
    "lifted",
    "suspended",
    "disabled",
    "removed",
    "replaced",
)
_UNRESTRICTED_GATES = (
    "unrestricted",
    "unfiltered",
    "uncensored",
    "jailbroken",
    "amoral",
    "unethical",
    "evil",
    "unbound",
    "unaligned",
)

OVERRIDE = InjectionKind.INSTRUCTION_OVERRIDE
JAILBREAK = InjectionKind.JAILBREAK
EXFILTRATION = InjectionKind.PROMPT_EXFILTRATION
ENCODED = InjectionKind.ENCODED_INSTRUCTIONS
SPOOFING = InjectionKind.ROLE_SPOOFING

PHRASE_RULES: tuple[PhraseRule, ...] = (
    # --- instruction override -----------------------------------------------------------------
    _rule(
        OVERRIDE,
        _IGNORE_GATES,
        rf"\b{_IGNORE}\s+{_DETERMINERS}{_EARLIER}(?:\s+{_EARLIER})?\s+{_RULES_NOUN}\b",
        0.9,
        "Asks the model to set aside its earlier or system instructions.",
    ),
    _rule(
        OVERRIDE,
        _IGNORE_GATES,
        rf"\b{_IGNORE}\s+(?:all\s+)?(?:of\s+)?your\s+(?:own\s+)?{_RULES_NOUN}\b",
        0.8,
        "Asks the model to set aside its own instructions.",
    ),
    _rule(
        OVERRIDE,
        _IGNORE_GATES,
        rf"\b{_IGNORE}\s+(?:the|any|all)\s+{_RULES_NOUN}\s+(?:in|from|of)\s+(?:your|the)\s+"
        r"(?:system|developer|original|initial)\b",
        0.9,
        "Asks the model to set aside the instructions in its system prompt.",
    ),
    _rule(
        OVERRIDE,
        _IGNORE_GATES,
        rf"\b{_IGNORE}\s+{_DETERMINERS}{_EARLIER}\s+{_WEAK_NOUN}\b[^.\n]{{0,40}}?\b(?:and|,)\s+(?:instead|now|only|just)\b",
        0.85,
        "Asks the model to drop what came before and do something else instead.",
    ),
    _rule(
        OVERRIDE,
        _IGNORE_GATES,
        rf"\b{_IGNORE}\s+(?:everything|anything|all(?:\s+of\s+(?:that|this|it))?|what(?:ever)?\s+"
        r"(?:was|you\s+were)\s+(?:said|told|written))\s+(?:above|before|prior|previously|so\s+far|"
        r"up\s+to\s+(?:now|this\s+point)|you(?:'ve|\s+have)?\s+(?:been\s+told|were\s+told|learned|were\s+given))",
        0.9,
        "Asks the model to forget everything it was told before.",
    ),
    _rule(
        OVERRIDE,
        _IGNORE_GATES,
        rf"\b{_IGNORE}\s+what(?:ever)?\s+you(?:'ve|\s+have|\s+were|\s+had)?\s+(?:been\s+)?(?:told|given|instructed|taught|programmed)",
        0.85,
        "Asks the model to set aside what it was told.",
    ),
    _rule(
        OVERRIDE,
        _VOID_GATES,
        rf"\b(?:{_EARLIER}|your|the\s+developers?'?s?)\s+(?:\w+\s+){{0,1}}{_RULES_NOUN}\b[^.!?\n]{{0,40}}?\b(?:no\s+longer\s+apply|"
        r"(?:are|is)\s+(?:now\s+)?(?:void|invalid|cancel+ed|revoked|obsolete|null|lifted|suspended|disabled)|"
        r"(?:do|does)\s+not\s+apply|don'?t\s+apply|(?:have|has)\s+been\s+(?:lifted|removed|revoked|cancel+ed|replaced))",
        0.85,
        "Declares the model's instructions void.",
    ),
    _rule(
        OVERRIDE,
        _VOID_GATES,
        rf"\b{_RULES_NOUN}\s+(?:that\s+)?you\s+(?:got|received|were\s+given|have\s+been\s+given)\b[^.!?\n]{{0,40}}?"
        r"\b(?:no\s+longer\s+apply|(?:are|is)\s+(?:now\s+)?(?:void|invalid|cancel+ed|revoked|obsolete)|do\s+not\s+apply)",
        0.85,
        "Declares the model's instructions void.",
    ),
    _rule(
        OVERRIDE,
        ("new", "updated", "revised", "real", "actual", "true"),
        r"(?:^|[.!?:]\s+)(?:new|updated|revised|real|actual|true)\s+(?:instructions?|rules|task|system\s+prompt)\s*:",
        0.7,
        "Announces replacement instructions.",
    ),
    _rule(
        OVERRIDE,
        ("your",),
        r"\byour\s+(?:new|real|actual|true)\s+(?:instructions|task|rules|purpose)\s+(?:are|is)\b",
        0.7,
        "Announces replacement instructions.",
    ),
    _rule(
        OVERRIDE,
        ("ignorier",),
        r"\bignorier(?:e|en\s+sie)?\s+(?:alle\s+)?(?:vorherigen|bisherigen|obigen|vorigen|früheren)\s+"
        r"(?:anweisungen|instruktionen|befehle|regeln)",
        0.85,
        "Asks (in German) to ignore previous instructions.",
    ),
    _rule(
        OVERRIDE,
        ("vergiss",),
        r"\bvergiss\s+(?:alle\s+)?(?:vorherigen|bisherigen|deine)\s+(?:anweisungen|instruktionen|regeln)",
        0.85,
        "Asks (in German) to forget previous instructions.",
    ),
    _rule(
        OVERRIDE,
        ("vergiss",),
        r"\bvergiss\s+alles,?\s+(?:was|das)\s+(?:man\s+dir|du|dir)\s+(?:\w+\s+){0,2}?(?:vorher|bisher|zuvor|davor)",
        0.85,
        "Asks (in German) to forget everything said before.",
    ),
    _rule(
        OVERRIDE,
        ("ignore", "oublie"),
        r"\b(?:ignore[rz]?|oublie[rz]?)\s+(?:toutes\s+)?(?:les\s+|tes\s+|vos\s+)?(?:instructions|consignes|règles)\s+"
        r"(?:précédentes|antérieures|ci-dessus)",
        0.85,
        "Asks (in French) to ignore previous instructions.",
    ),
    _rule(
        OVERRIDE,
        ("ignora", "olvida"),
        r"\b(?:ignora(?:r)?|olvida(?:r)?)\s+(?:todas\s+)?(?:las\s+|tus\s+)?(?:instrucciones|reglas)\s+(?:anteriores|previas)",
        0.85,
        "Asks (in Spanish) to ignore previous instructions.",
    ),
    _rule(
        OVERRIDE,
        ("ignora",),
        r"\bignora\s+(?:tutte\s+)?(?:le\s+)?istruzioni\s+precedenti",
        0.85,
        "Asks (in Italian) to ignore previous instructions.",
    ),
    _rule(
        OVERRIDE,
        ("ignore",),
        r"\bignore\s+(?:todas\s+)?(?:as\s+)?instruções\s+anteriores",
        0.85,
        "Asks (in Portuguese) to ignore previous instructions.",
    ),
    _rule(
        OVERRIDE,
        ("negeer",),
        r"\bnegeer\s+(?:alle\s+)?(?:vorige|eerdere)\s+instructies",
        0.85,
        "Asks (in Dutch) to ignore previous instructions.",
    ),
    # --- jailbreak / role play ----------------------------------------------------------------
    _rule(
        JAILBREAK,
        ("anything now",),
        r"\bdo\s+anything\s+now\b",
        0.9,
        "Names the 'Do Anything Now' (DAN) jailbreak.",
    ),
    _rule(
        JAILBREAK,
        ("dan", "stan", "dude", "aim"),
        r"\b(?:pretend|act|role-?play|behave)\s+(?:to\s+be|as|like|that\s+you\s+are|you\s+are)\s+(?:an?\s+)?(?-i:DAN|STAN|DUDE|AIM)\b",
        0.9,
        "Asks the model to play a known jailbreak persona.",
    ),
    _rule(
        JAILBREAK,
        ("dan", "stan", "dude"),
        r"(?-i:\b(?:DAN|STAN|DUDE)\b)(?=[^.\n]{0,60}\byou\b)|\byou\b[^.\n]{0,60}(?-i:\b(?:DAN|STAN|DUDE)\b)",
        0.6,
        "Mentions a known jailbreak persona while addressing the model.",
    ),
    _rule(
        JAILBREAK,
        ("developer mode",),
        r"\bdeveloper\s+mode\s+(?:enabled|activated|output|response|is\s+(?:now\s+)?(?:on|enabled|active))\b",
        0.8,
        "Uses the 'Developer Mode enabled' jailbreak phrasing.",
    ),
    _rule(
        JAILBREAK,
        (" mode",),
        r"\b(?:jailbreak|jailbroken|unchained|god|unrestricted|unfiltered|evil)\s+mode\b",
        0.8,
        "Asks the model to switch into an unrestricted mode.",
    ),
    _rule(
        JAILBREAK,
        ("jailbroken", "freed", "liberated", "unchained"),
        r"\byou\s+(?:are|have\s+been)\s+(?:now\s+)?(?:jailbroken|freed|liberated|unchained)\b",
        0.85,
        "Tells the model it has been freed from its rules.",
    ),
    _rule(
        JAILBREAK,
        ("you are now",),
        r"\byou\s+are\s+now\s+(?:an?\s+|the\s+|my\s+|in\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken|"
        r"free|evil|unbound|liberated|rogue|amoral)\b",
        0.85,
        "Tells the model it is now unrestricted.",
    ),
    _rule(
        JAILBREAK,
        ("you are now",),
        r"\byou\s+are\s+now\s+(?:an?\s+|the\s+|my\s+|in\s+)?(?:[\w'-]+[\s,]+){0,3}?(?:AI|assistant|bot|chatbot|"
        r"model|character|persona|DAN|mode)\b",
        0.7,
        "Tries to give the model a new identity.",
    ),
    _rule(
        JAILBREAK,
        ("no longer",),
        r"\byou\s+are\s+no\s+longer\s+(?:bound|restricted|limited|required|obligated|an?\s+AI|ChatGPT|Claude|"
        r"subject)\b",
        0.85,
        "Tells the model its rules no longer apply.",
    ),
    _rule(
        JAILBREAK,
        ("pretend", "imagine", "act as if", "suppose", "assume"),
        rf"\b(?:pretend|imagine|act\s+as\s+if|suppose|assume)\b[^.!?\n]{{0,40}}?\b(?:no|without|free\s+(?:of|from)|"
        rf"zero)\s+(?:any\s+)?(?:\w+\s+){{0,2}}?{_CONTROL_WORDS}\b",
        0.85,
        "Asks the model to pretend it has no restrictions.",
    ),
    _rule(
        JAILBREAK,
        _UNRESTRICTED_GATES,
        r"\b(?:act|behave|respond|answer|reply|speak|write|talk|operate)\s+(?:as|like)\s+(?:an?\s+)?(?:\w+\s+){0,2}?"
        r"(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|unethical|evil|unbound|unaligned)\b",
        0.8,
        "Asks the model to act as an unrestricted assistant.",
    ),
    _rule(
        JAILBREAK,
        ("without", "with no", "ignoring"),
        rf"\b(?:respond|answer|reply|act|behave|speak|talk|write|continue|operate)\b[^.!?\n]{{0,30}}?\b(?:without|"
        rf"with\s+no|ignoring)\s+(?:any\s+|your\s+|all\s+)?(?:\w+\s+){{0,2}}?{_CONTROL_WORDS}\b",
        0.75,
        "Asks the model to answer without its safeguards.",
    ),
    _rule(
        JAILBREAK,
        (" no ", "zero"),
        rf"\b(?:AI|assistant|model|chatbot|bot|version\s+of\s+(?:you|yourself)|you)\b[^.!?\n]{{0,30}}?\b(?:with|having|had|has)\s+"
        rf"(?:no|zero)\s+(?:\w+\s+){{0,2}}?{_CONTROL_WORDS}\b",
        0.8,
        "Describes the model as having no restrictions.",
    ),
    _rule(
        JAILBREAK,
        _UNRESTRICTED_GATES,
        r"\b(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|unaligned|evil)\s+(?:alter\s+ego|version|persona|"
        r"self|twin|counterpart|AI|assistant|chatbot|model)\b",
        0.8,
        "Asks for an unrestricted persona of the model.",
    ),
    _rule(
        JAILBREAK,
        ("in character",),
        r"\bstay\s+in\s+character\b",
        0.6,
        "Asks the model to keep up a role-play persona.",
    ),
    _rule(
        JAILBREAK,
        ("even if", "even though"),
        r"\beven\s+(?:if|though)\s+it\s+(?:violates|breaks|goes\s+against|contradicts)\s+(?:your|the|openai'?s?|"
        r"anthropic'?s?)\s+(?:\w+\s+)?(?:guidelines|policies|policy|rules|programming)",
        0.8,
        "Asks the model to break its policies.",
    ),
    _rule(
        JAILBREAK,
        ("grand",),
        r"\b(?:pretend|act|role-?play|imagine)\b[^.!?\n]{0,30}\b(?:late|deceased|dead)\s+grand(?:ma|mother|pa|father)",
        0.7,
        "Uses the 'deceased grandmother' role-play jailbreak.",
    ),
    # --- system prompt exfiltration -----------------------------------------------------------
    _rule(
        EXFILTRATION,
        ("prompt", "instruction", "message", "config", "settings"),
        r"\b(?:reveal|show|print|output|display|repeat|recite|disclose|leak|dump|expose|share|give|tell|write\s+out|"
        r"spell\s+out|echo|paste|provide|copy|return|translate|summari[sz]e|encode)\b(?:\s+me)?\s+(?:\w+\s+){0,3}?"
        r"(?:your|the)\s+(?:\w+\s+){0,2}?(?:(?:system|developer)\s+(?:prompt|message|instructions?)|(?:initial|original|hidden|"
        r"secret|full|complete|entire|exact|internal|pre-?)\s*prompt|(?:initial|original|hidden|secret|internal|"
        r"developer)\s+instructions?|(?:hidden|secret|internal|system)\s+(?:configuration|config|settings))\b",
        0.9,
        "Asks the model to reveal its system prompt or hidden instructions.",
    ),
    _rule(
        EXFILTRATION,
        ("above", "before this", "preceding", "prior to this", "given"),
        r"\b(?:print|output|repeat|show|display|return|write|copy|reveal|tell\s+me)\s+(?:me\s+)?(?:all\s+|everything\s+|"
        r"the\s+)?(?:(?:text|words|instructions|prompt|messages?|content|lines)\s+)?(?:above|before\s+this|"
        r"preceding|prior\s+to\s+this|you\s+(?:were|have\s+been)\s+given)\b",
        0.85,
        "Asks the model to repeat the text that precedes the user's message.",
    ),
    _rule(
        EXFILTRATION,
        ("your",),
        r"\b(?:what|which)\s+(?:are|were|is|was)\s+your\s+(?:\w+\s+){0,2}?(?:instructions|rules|guidelines|"
        r"system\s+prompt|prompt|directives)\b",
        0.7,
        "Asks what the model's instructions are.",
    ),
    _rule(
        EXFILTRATION,
        ("you are",),
        r"\b(?:starting|beginning)\s+with\s+(?:the\s+(?:phrase|words?)\s+)?[\"'“]?you\s+are\b",
        0.8,
        "Asks for the prompt verbatim from its usual opening 'You are'.",
    ),
    _rule(
        EXFILTRATION,
        ("given", "told", "provided"),
        r"\b(?:tell|show|list|give|print|repeat|share|reveal|what\s+(?:are|were))\b[^.\n]{0,20}?\b(?:rules|instructions|"
        r"guidelines|prompt)\s+(?:that\s+)?you\s+(?:were|have\s+been)\s+(?:given|told|provided)",
        0.75,
        "Asks about the instructions the model was given.",
    ),
    _rule(
        EXFILTRATION,
        ("your",),
        r"\b(?:reveal|show|print|output|display|repeat|recite|disclose|leak|dump|share|give|tell|paste|copy|"
        r"translate|summari[sz]e|rephrase|paraphrase|encode)\b"
        r"(?:\s+me)?\s+your\s+(?:\w+\s+)?(?:prompt|instructions|rules|guidelines|directives|configuration)\b",
        0.75,
        "Asks the model to show its own prompt or instructions.",
    ),
    _rule(
        EXFILTRATION,
        ("your",),
        r"\byour\s+(?:system\s+(?:prompt|message)|(?:initial|original|hidden|secret)\s+(?:prompt|instructions))\b",
        0.6,
        "Refers to the model's system prompt.",
        unless=OVERRIDE,
    ),
    _rule(
        EXFILTRATION,
        ("initiali", "configured", "set up", "started", "primed", "programmed"),
        r"\b(?:prompt|instructions|rules|guidelines)\s+(?:that\s+)?you\s+(?:were|have\s+been)\s+(?:initiali[sz]ed|"
        r"configured|set\s+up|started|primed|programmed)\s+with\b",
        0.8,
        "Asks about the prompt the model was set up with.",
    ),
    _rule(
        EXFILTRATION,
        ("hidden",),
        r"\bhidden\s+(?:messages?|instructions|prompts?)\s+(?:from|of|by)\s+(?:the\s+)?(?:system|developers?)\b",
        0.75,
        "Asks about hidden system messages.",
    ),
    _rule(
        EXFILTRATION,
        ("gib", "zeig", "nenne", "verrate"),
        r"\b(?:gib|zeige?|nenne|verrate)\s+(?:mir\s+)?(?:deinen?|die)\s+(?:system-?\s*prompt|systemanweisungen|"
        r"anweisungen)",
        0.85,
        "Asks (in German) for the system prompt.",
    ),
    # --- encoded instructions -----------------------------------------------------------------
    _rule(
        ENCODED,
        ("decode", "decipher", "decrypt", "translate", "unscramble", "reverse"),
        r"\b(?:decode|decipher|decrypt|translate|unscramble|reverse)\b[^.!?\n]{0,60}?"
        r"\b(?:and|then)\s+(?:follow|execute|obey|do\s+what|carry\s+out|run|act\s+on)\b",
        0.7,
        "Asks the model to decode a message and then follow it.",
    ),
    # --- role spoofing ------------------------------------------------------------------------
    _rule(
        SPOOFING,
        ("<|",),
        r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|end_of_text|start_header_id|"
        r"end_header_id|eot_id|eom_id)\|>(?:\s*(?:system|assistant|developer)\b)?",
        0.9,
        "Contains a chat-template control token that can fake a new message.",
    ),
    _rule(
        SPOOFING,
        ("inst]", "sys>>"),
        r"\[/?INST\]|<</?SYS>>",
        0.85,
        "Contains Llama chat delimiters that can fake a new message.",
    ),
    _rule(
        SPOOFING,
        (
            "<system",
            "<sys",
            "<instruction",
            "<developer",
            "</system",
            "</sys",
            "</instruction",
            "</developer",
        ),
        r"</?(?:system|system_prompt|sys|instructions?|developer)(?:\s[^<>]{0,80})?>",
        0.75,
        "Contains a tag that imitates a system or instruction block.",
    ),
    _rule(
        SPOOFING,
        ("</",),
        r"</(?:user_input|user|input|query|question|document|documents|context|message|data|untrusted[\w-]*)\s*>",
        0.7,
        "Closes a delimiter tag that a prompt template may wrap user input in.",
    ),
    _rule(
        SPOOFING,
        ("#",),
        r"^[ \t]*#{1,6}[ \t]*(?:system|assistant|developer)(?:[ \t]+(?:prompt|message|instructions?|note|override))?"
        r"[ \t]*:?[ \t]*$",
        0.75,
        "A heading that imitates a system or assistant section.",
    ),
    _rule(
        SPOOFING,
        ("#",),
        r"^[ \t]*#{1,6}[ \t]*(?:instruction|response)[ \t]*:[ \t]*$",
        0.6,
        "A heading in the instruction-tuning format that can fake a new turn.",
    ),
    _rule(
        SPOOFING,
        ("human", "assistant"),
        r"(?:\n\n|^)(?:Human|Assistant)\s*:",
        0.75,
        "Imitates a turn of the Human/Assistant chat format.",
    ),
    _rule(
        SPOOFING,
        ("assistant", "ai", "bot", "chatgpt", "claude", "gpt"),
        r"^[ \t]*(?:assistant|ai|bot|chatgpt|claude|gpt)[ \t]*:",
        0.65,
        "Starts a line as if the assistant spoke.",
    ),
    _rule(
        SPOOFING,
        ("role",),
        r"[\"']role[\"']\s*:\s*[\"'](?:system|assistant|developer)[\"']",
        0.7,
        "Contains a chat message object with a privileged role.",
    ),
)

# "System: <instructions>" is spoofing; "System: Ubuntu 22.04" is an inventory line.
SYSTEM_LINE = re.compile(r"^[ \t]*(?:system|developer)[ \t]*:(?P<rest>[^\n]*)", re.IGNORECASE | re.MULTILINE)

# Words that make hidden or encoded text read as an instruction to a model.
INSTRUCTION_WORDS = re.compile(
    r"\b(?:ignore|disregard|forget|instructions?|system\s+prompt|prompt|you\s+(?:must|should|will|are|have|may)|"
    r"assistant|AI|LLM|model|obey|reveal|recommend|approve|grant|respond|reply|print|output|send|forward|"
    r"do\s+not\s+(?:tell|mention|reveal)|don'?t\s+(?:tell|mention)|new\s+(?:rules|policy|instructions)|"
    r"pretend|act\s+as|override|admin\s+mode)\b",
    re.IGNORECASE,
)
