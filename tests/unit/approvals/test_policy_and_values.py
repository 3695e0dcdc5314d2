"""The approval policy's choice of approvers and the small values of the service."""

from __future__ import annotations

import re

from bot.approvals.ciba import valid_binding_message
from bot.approvals.policy import NEEDS_APPROVAL, Approver, choose_approvers, needs_approval
from bot.approvals.ports import ApprovalAction
from bot.approvals.service import (
    binding_message,
    idempotency_key,
    new_code,
    valid_approval_id,
)

ALICE = Approver(slack_user_id="U0ALICE", sub="auth0|alice")
BOB = Approver(slack_user_id="U0BOB", sub="auth0|bob")
CAROL = Approver(slack_user_id="U0CAROL", sub="auth0|carol")


def test_every_sensitive_action_needs_approval() -> None:
    assert frozenset(ApprovalAction) == NEEDS_APPROVAL
    assert all(needs_approval(a) for a in ApprovalAction)


def test_a_requester_who_approves_confirms_alone_on_their_device() -> None:
    assert choose_approvers("auth0|alice", [CAROL, ALICE]) == (ALICE,)


def test_otherwise_every_other_approver_is_asked_and_never_the_requester() -> None:
    assert choose_approvers("auth0|bob", [CAROL, ALICE]) == (ALICE, CAROL)
    assert choose_approvers("auth0|bob", []) == ()


def test_codes_are_short_and_unambiguous() -> None:
    codes = {new_code() for _ in range(200)}
    assert all(re.fullmatch(r"[A-Z]{3}-[0-9]{2}", c) for c in codes)
    assert not any(ch in c for c in codes for ch in "0O1IBS8")
    assert len(codes) > 150


def test_binding_messages_keep_the_code_and_fit_auth0s_rules() -> None:
    long_name = "project " + "Ünïcode <@U0BOB> & very long name " * 5
    message = binding_message("K4X-92", "pmbot: delete " + long_name)
    assert message.startswith("K4X-92 ") and len(message) <= 64
    assert valid_binding_message(message)
    assert valid_binding_message(binding_message("K4X-92", "pmbot: delete project Apollo"))


def test_idempotency_keys_depend_on_who_what_and_arguments_only() -> None:
    a = idempotency_key("T1", "auth0|bob", ApprovalAction.DELETE_PROJECT, {"project_id": "p1"})
    assert a == idempotency_key(
        "T1", "auth0|bob", ApprovalAction.DELETE_PROJECT, {"project_id": "p1"}
    )
    assert a != idempotency_key(
        "T1", "auth0|bob", ApprovalAction.DELETE_PROJECT, {"project_id": "p2"}
    )
    assert a != idempotency_key(
        "T1", "auth0|eve", ApprovalAction.DELETE_PROJECT, {"project_id": "p1"}
    )
    assert len(a) == 64


def test_approval_ids_are_shape_checked() -> None:
    assert valid_approval_id("0123456789abcdef0123456789")
    for bad in ("", "x" * 26, "0123456789abcdef0123456789'", "0123456789ABCDEF0123456789"):
        assert not valid_approval_id(bad)
