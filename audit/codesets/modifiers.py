"""CPT modifiers (AMA Appendix A numbers; no descriptors shipped).

73/74 are the ASC/hospital outpatient discontinued-procedure modifiers, 90-92 lab (reference lab,
repeat test, alternative platform), 93 audio-only, 95 synchronous telemedicine, 96/97
habilitative/rehabilitative, P1-P6 anesthesia physical status. Every other alphanumeric modifier is
a HCPCS Level II modifier, checked against the HCPCS release in force.
"""

from __future__ import annotations

CPT_MODIFIERS: frozenset[str] = frozenset(
    [
        "22", "23", "24", "25", "26", "27", "32", "33", "47", "50", "51", "52", "53", "54", "55", "56",
        "57", "58", "59", "62", "63", "66", "73", "74", "76", "77", "78", "79", "80", "81", "82", "90",
        "91", "92", "93", "95", "96", "97", "99", "P1", "P2", "P3", "P4", "P5", "P6",
    ]
)  # fmt: skip
