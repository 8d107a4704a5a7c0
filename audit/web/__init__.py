"""Server-rendered web pages (Jinja2) over the same services as the API. See audit/web/README.md."""

from audit.web.app import install, is_page
from audit.web.errors import SignInRequired, domain_error_page, error_page, sign_in_redirect

__all__ = ["SignInRequired", "domain_error_page", "error_page", "install", "is_page", "sign_in_redirect"]
