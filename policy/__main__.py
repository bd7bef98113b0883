"""`pulumi preview --policy-pack policy`: the ichrisbirch guard rails."""

from pack import policies
from pulumi_policy import PolicyPack

PolicyPack(name="ichrisbirch-guard-rails", policies=policies())
