"""Page routers, one module per area. Add a module's router here to mount it."""

from audit.web.routes.account import router as account_router
from audit.web.routes.admin import router as admin_router
from audit.web.routes.auditor import router as auditor_router
from audit.web.routes.audits import router as audits_router
from audit.web.routes.coder import router as coder_router
from audit.web.routes.compliance import router as compliance_router
from audit.web.routes.encounter import router as encounter_router
from audit.web.routes.provider import router as provider_router
from audit.web.routes.reports import router as reports_router

ROUTERS = (
    account_router,
    provider_router,
    coder_router,
    encounter_router,
    compliance_router,
    reports_router,
    auditor_router,
    admin_router,
    audits_router,
)
