"""A small realistic organisation for trying the service (development only).

Everything goes through the services, so the demo's ledger is as real as production's.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session, select

from audit.attestation.service import attest
from audit.delegation.schemas import DelegationCreate
from audit.delegation.service import grant_delegation
from audit.encounter.codes import add_code, change_code, void_code
from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, EncounterCreate, ReasonIn
from audit.encounter.service import create_encounter
from audit.ledger.events import Actor
from audit.models import User, utcnow
from audit.principal import CurrentUser
from audit.uow import unit_of_work
from audit.user.schemas import UserCreate
from audit.user.service import create_user

# Published on purpose: the demo refuses to run when AUDIT_ENV=production.
DEMO_PASSWORDS = {
    "provider": "demo-provider-pass",
    "coder": "demo-coder-pass1",
    "compliance": "demo-compliance-pass",
    "auditor": "demo-auditor-pass",
    "admin": "demo-admin-pass1",
    "integration": "demo-integration-pass",
}

PEOPLE = [
    ("dr.okafor", "Adaeze Okafor", ["provider"], "1987654328", "MD"),
    ("dr.lindqvist", "Erik Lindqvist", ["provider"], "1456789019", "DO"),
    ("np.reyes", "Marisol Reyes", ["provider"], "1678901236", "NP"),
    ("coder.chen", "Wei Chen", ["coder"], None, None),
    ("coder.patel", "Priya Patel", ["coder"], None, None),
    ("compliance.brooks", "Dana Brooks", ["compliance"], None, None),
    ("auditor.kim", "Jordan Kim (external)", ["auditor"], None, None),
    ("admin.ops", "Ops Administrator", ["admin"], None, None),
    ("ehr.feed", "EHR interface", ["integration"], None, None),
]

# (provider, coder, days ago, [(system, code, modifiers, units)])
Line = tuple[str, str, list[str], int]
VISITS: list[tuple[str, str, int, list[Line]]] = [
    (
        "dr.okafor",
        "coder.chen",
        3,
        [
            ("ICD-10-CM", "E11.9", [], 1),
            ("ICD-10-CM", "I10", [], 1),
            ("CPT", "99214", [], 1),
            ("CPT", "83036", [], 1),
        ],
    ),
    (
        "dr.okafor",
        "coder.chen",
        9,
        [("ICD-10-CM", "J45.909", [], 1), ("CPT", "99213", [], 1), ("CPT", "94010", [], 1)],
    ),
    (
        "dr.lindqvist",
        "coder.patel",
        5,
        [
            ("ICD-10-CM", "M54.50", [], 1),
            ("CPT", "99203", [], 1),
            ("HCPCS", "J1100", [], 2),
            ("CPT", "96372", [], 1),
        ],
    ),
    (
        "dr.lindqvist",
        "coder.patel",
        40,
        [("ICD-10-CM", "S93.401A", [], 1), ("CPT", "99283", ["25"], 1), ("CPT", "29540", ["RT"], 1)],
    ),
    (
        "np.reyes",
        "coder.chen",
        2,
        [("ICD-10-CM", "Z00.00", [], 1), ("CPT", "99396", [], 1), ("HCPCS", "G0444", [], 1)],
    ),
]


def seed_demo(*, only_if_empty: bool) -> list[tuple[str, list[str]]]:
    """Create the demo users and encounters; returns (username, roles) of the users created."""
    with unit_of_work() as session:
        if only_if_empty and session.exec(select(User)).first() is not None:
            return []
        users = _users(session)
        _delegations(session, users)
        _encounters(session, users)
        return [(u.username, sorted(u.roles)) for u in users.values()]


def _users(session: Session) -> dict[str, User]:
    cli = Actor(id=None, role="cli", username="demo")
    users: dict[str, User] = {}
    for username, name, roles, npi, credential in PEOPLE:
        existing = session.exec(select(User).where(User.username == username)).first()
        users[username] = existing or create_user(
            session,
            data=UserCreate(
                username=username,
                password=DEMO_PASSWORDS[roles[0]],
                display_name=name,
                roles=roles,
                npi=npi,
                credential=credential,
            ),
            actor=cli,
        )
    return users


# (provider, coder, code systems)
DELEGATIONS = [
    ("dr.okafor", "coder.chen", ["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"]),
    ("dr.lindqvist", "coder.patel", ["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"]),
    ("np.reyes", "coder.chen", ["CPT", "HCPCS", "ICD-10-CM"]),
]


def _delegations(session: Session, users: dict[str, User]) -> None:
    for provider, coder, systems in DELEGATIONS:
        grant_delegation(
            session,
            user=CurrentUser.of(users[provider]),
            data=DelegationCreate(
                coder_id=users[coder].id,
                code_systems=systems,
                valid_from=utcnow() - timedelta(days=90),
                valid_until=utcnow() + timedelta(days=365),
            ),
        )


def _encounters(session: Session, users: dict[str, User]) -> None:
    """Coders code each visit under delegation; providers attest some (one late); one is amended."""
    today = date.today()
    for n, (provider, coder, days_ago, lines) in enumerate(VISITS, start=1):
        coder_user, provider_user = CurrentUser.of(users[coder]), CurrentUser.of(users[provider])
        encounter = create_encounter(
            session,
            user=coder_user,
            data=EncounterCreate(
                external_id=f"DEMO-{today:%Y%m%d}-{n:03d}",
                patient_ref=f"MRN-{4100 + n}",
                date_of_service=today - timedelta(days=days_ago),
                rendering_provider_id=users[provider].id,
            ),
        )
        created = [
            add_code(
                session,
                user=coder_user,
                encounter_id=encounter.id,
                data=CodeLineCreate(system=system, code=code, modifiers=mods, units=units),
            ).line
            for system, code, mods, units in lines
        ]
        if n in (1, 2, 4):  # visit 4 is signed 40 days after the date of service: late
            attest(
                session, user=provider_user, encounter_id=encounter.id, password=DEMO_PASSWORDS["provider"]
            )
        if n == 1:  # an amendment after attestation and a removal: the encounter is `amended`
            change_code(
                session,
                user=coder_user,
                encounter_id=encounter.id,
                line_id=created[2].id,
                if_match='"1"',
                data=CodeLinePatch(code="99213", reason="Documentation supports level 3 MDM"),
            )
            void_code(
                session,
                user=coder_user,
                encounter_id=encounter.id,
                line_id=created[3].id,
                data=ReasonIn(reason="HbA1c was drawn at an outside lab"),
            )
