"""Provisioning: bring a live instance in line with a target's declared instance policy.

Terraform's split: ``read_live`` -> ``compute_plan`` (a Plan, no I/O) -> ``render`` -> ``apply_plan``.
Azure Managed Redis goes through azure-mgmt-redisenterprise (imported only when an Azure target
is read), any other Redis through CONFIG GET/SET.
"""

from toolkit.provision.apply import Outcome, apply_plan, open_backend, read_live
from toolkit.provision.plan import Change, Finding, Plan, compute_plan
from toolkit.provision.render import FORMAT_VERSION, as_dict, render
from toolkit.provision.state import LiveState

__all__ = ["FORMAT_VERSION", "Change", "Finding", "LiveState", "Outcome", "Plan", "apply_plan", "as_dict",
           "compute_plan", "open_backend", "read_live", "render"]
