"""A small realistic organisation for trying the service (development only).

Everything goes through the services, so the demo's ledger is as real as production's.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session, col, select

from audit.attestation.service import attest
from audit.coding_audit.closure import respond
from audit.coding_audit.findings import record_finding
from audit.coding_audit.schemas import AuditCreate, FindingCreate, RevisedIn, SamplingIn, ScopeIn
from audit.coding_audit.service import draw_sample, open_audit
from audit.delegation.schemas import DelegationCreate
from audit.delegation.service import grant_delegation
from audit.encounter.codes import add_code, change_code, void_code
from audit.encounter.oversight import add_note
from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, EncounterCreate, ReasonIn
from audit.encounter.service import active_lines, create_encounter
from audit.engagement.schemas import EngagementCreate
from audit.engagement.service import open_engagement
from audit.errors import DomainError
from audit.ledger.events import Actor
from audit.models import Encounter, User, utcnow
from audit.principal import CurrentUser
from audit.uow import unit_of_work
from audit.user.schemas import UserCreate
from audit.user.service import bootstrap_user

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

# (provider, coder, days before the demo's last date of service, [(system, code, modifiers, units)])
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
        _oversight(session, users)
        _coding_audit(session, users)
        people = {name: CurrentUser.of(u) for name, u in users.items()}
    _refused_attempts(people)
    return [(u.username, sorted(u.roles)) for u in users.values()]


def _users(session: Session) -> dict[str, User]:
    cli = Actor(id=None, role="cli", username="demo")
    users: dict[str, User] = {}
    for username, name, roles, npi, credential in PEOPLE:
        existing = session.exec(select(User).where(User.username == username)).first()
        users[username] = existing or bootstrap_user(
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
                valid_until=utcnow() + timedelta(days=270),  # within delegations.max_days (365)
            ),
        )


def last_demo_day(today: date) -> date:
    """Today, or the last day the built-in ICD-10-CM releases cover if today is later: the demo's
    codes are then checked against a real code set, not judged by the year before."""
    from audit.codesets.builtin import manifest

    covered = max(r.effective_until for r in manifest() if r.system == "ICD-10-CM")
    return min(today, covered)


def _encounters(session: Session, users: dict[str, User]) -> None:
    """Coders code each visit under delegation; providers attest some (late when the built-in code
    sets end before today); one is amended."""
    today = date.today()
    last = last_demo_day(today)
    for n, (provider, coder, days_ago, lines) in enumerate(VISITS, start=1):
        coder_user, provider_user = CurrentUser.of(users[coder]), CurrentUser.of(users[provider])
        encounter = create_encounter(
            session,
            user=coder_user,
            data=EncounterCreate(
                external_id=f"DEMO-{today:%Y%m%d}-{n:03d}",
                patient_ref=f"MRN-{4100 + n}",
                date_of_service=last - timedelta(days=days_ago),
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
        if n in (1, 2, 4):  # visit 4 is signed at least 40 days after the date of service: late
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


def _oversight(session: Session, users: dict[str, User]) -> None:
    """Compliance flags the amended encounter and opens an engagement for the external auditor over
    Dr Okafor's encounters: the dashboard, the timeline and the auditor's pages have work to show."""
    officer = CurrentUser.of(users["compliance.brooks"])
    amended = session.exec(
        select(Encounter).where(Encounter.status == "amended").order_by(col(Encounter.external_id))
    ).first()
    if amended is not None:
        add_note(
            session,
            user=officer,
            encounter_id=amended.id,
            kind="flag",
            text="Level changed after signature: review the documentation for 99213 vs 99214",
        )
    last = last_demo_day(date.today())
    open_engagement(
        session,
        user=officer,
        data=EngagementCreate(
            auditor_id=users["auditor.kim"].id,
            date_from=last - timedelta(days=120),
            date_to=last,
            provider_ids=[users["dr.okafor"].id],
            expires_at=utcnow() + timedelta(days=30),
            purpose="Annual E/M coding review of Dr Okafor (demo)",
        ),
    )


def _coding_audit(session: Session, users: dict[str, User]) -> None:
    """The external auditor audits Dr Okafor's coding inside the engagement: a reproducible sample,
    agreement on most lines, one E/M level found a level too high, which Dr Okafor disputes. Compliance has a
    dispute to decide, the provider a finding to answer, the auditor a report to sign once it is."""
    auditor = CurrentUser.of(users["auditor.kim"])
    last = last_demo_day(date.today())
    audit = open_audit(
        session,
        user=auditor,
        data=AuditCreate(
            name="Dr Okafor E/M review (demo)",
            scope=ScopeIn.model_validate(
                {"from": last - timedelta(days=120), "to": last, "provider_ids": [users["dr.okafor"].id]}
            ),
            sampling=SamplingIn(method="random", n=2),
            seed=2026,
        ),
    )
    audit = draw_sample(session, user=auditor, audit_id=audit.id)
    disputed = None
    for encounter_id in audit.sample or []:
        for line in active_lines(session, encounter_id):
            upcoded = disputed is None and line.code in ("99213", "99214", "99215")
            finding = record_finding(
                session,
                user=auditor,
                audit_id=audit.id,
                data=FindingCreate(
                    encounter_id=encounter_id,
                    line_id=line.id,
                    verdict="disagree" if upcoded else "agree",
                    revised=RevisedIn(code=str(int(line.code) - 1)) if upcoded else None,
                    category="upcoded" if upcoded else None,
                    rationale="MDM supports one level lower: one stable chronic illness"
                    if upcoded
                    else "Supported by the documentation",
                ),
            )
            disputed = finding if upcoded else disputed
    if disputed is not None:
        respond(
            session,
            user=CurrentUser.of(users["dr.okafor"]),
            finding_id=disputed.id,
            response="dispute",
            comment="Two chronic illnesses were managed at this visit; see the assessment",
        )


def _refused_attempts(people: dict[str, CurrentUser]) -> None:
    """Two attempts the product refuses, each in its own unit of work as a real request would be: a
    coder without a delegation from Dr Okafor (a `denied` event with its explanation) and a header
    code that the built-in ICD-10-CM release refuses (a `failed` event)."""
    with unit_of_work() as session:
        target = session.exec(
            select(Encounter)
            .where(Encounter.rendering_provider_id == people["dr.okafor"].id)
            .order_by(col(Encounter.external_id))
        ).first()
        encounter_id = target.id if target is not None else None
    if encounter_id is None:
        return
    attempts = [
        (people["coder.patel"], CodeLineCreate(system="CPT", code="99215", modifiers=[], units=1)),
        (people["coder.chen"], CodeLineCreate(system="ICD-10-CM", code="E11", modifiers=[], units=1)),
    ]
    for coder, line in attempts:
        try:
            with unit_of_work() as session:
                add_code(session, user=coder, encounter_id=encounter_id, data=line)
        except DomainError:
            pass  # refused, and recorded by the unit of work: the evidence the demo shows
