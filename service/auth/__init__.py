"""API tokens (hashed at rest, roles admin | worker), who is calling and what they may do, and
the rule that a server without a token serves only loopback."""
from tuneserve_service.auth.exposure import InsecureBind, check_exposure
from tuneserve_service.auth.guard import ANONYMOUS, Caller, TokenCache, is_loopback
from tuneserve_service.auth.tokens import Role, create_token, list_tokens, revoke_token

__all__ = ["ANONYMOUS", "Caller", "InsecureBind", "Role", "TokenCache", "check_exposure", "create_token",
           "is_loopback", "list_tokens", "revoke_token"]
