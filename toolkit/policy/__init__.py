"""The policy language: loading, checking and the shared frozen model."""

from toolkit.policy.loader import load
from toolkit.policy.model import (
    BUILTIN_TIERS,
    PERSISTENT,
    AccessPolicyAssignment,
    Auth,
    AzureRef,
    CacheAside,
    ClientOptions,
    InstancePolicy,
    InvalidationRule,
    Module,
    Namespace,
    Persistence,
    PolicySet,
    Target,
    Tier,
    resolve_env,
)
from toolkit.policy.templates import KeyTemplate, Param, glob_escape

__all__ = [
    "BUILTIN_TIERS", "PERSISTENT", "AccessPolicyAssignment", "Auth", "AzureRef", "CacheAside", "ClientOptions", "InstancePolicy",
    "InvalidationRule", "KeyTemplate", "Module", "Namespace", "Param", "Persistence", "PolicySet", "Target", "Tier",
    "glob_escape", "load", "resolve_env",
]
