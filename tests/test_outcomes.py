"""The status table: every HTTP status the sender can meet, and what the row becomes."""
from __future__ import annotations

import pytest

from flows.outcomes import (
    DEFAULT_STATUS_TABLE,
    DONE_STATUSES,
    OK_STATUSES,
    Action,
    Outcome,
    Reason,
    Rule,
    Status,
    rule_for,
)

S, R, T, U, X, F = Action.SUCCESS, Action.REJECT, Action.RETRY, Action.UNKNOWN, Action.STOP, Action.FAIL

STATUS_TABLE = [
    # (HTTP status, action, fragment of the message; "" when none is shown)
    (200, S, ""),
    (201, S, ""),
    (202, S, ""),
    (204, S, ""),
    (206, S, ""),  # any other 2xx: success
    (301, F, "unexpected redirect (301); check the base URL"),
    (308, F, "unexpected redirect (308)"),
    (400, R, "the provider rejected the row"),
    (401, X, "credentials were refused (401): fix the API key or login, then rerun"),
    (402, R, "(402)"),
    (403, X, "credentials lack permission (403)"),
    (404, F, "endpoint or resource not found (404): check the base URL"),
    (405, R, "the provider rejected the row (405)"),
    (408, U, "check before resending"),
    (409, R, "conflict (409)"),
    (410, R, "(410)"),
    (422, R, "the provider rejected the row"),
    (429, T, "rate limited (429)"),
    (500, U, "provider error (500) after the request arrived; check before resending"),
    (501, U, "provider error (501) after the request arrived"),
    (502, T, "bad gateway (502)"),
    (503, T, "provider unavailable (503)"),
    (504, T, "gateway timeout (504)"),
    (599, U, "provider error (599)"),
    (100, U, "unexpected status 100"),
    (700, U, "unexpected status 700"),
]


@pytest.mark.parametrize(("status", "action", "message"), STATUS_TABLE)
def test_status_table(status, action, message):
    rule = rule_for(status)
    assert rule.action is action
    assert message in rule.message
    if not message:
        assert rule.message == ""


def test_retry_is_only_for_statuses_where_nothing_was_booked():
    retried = {code for code, rule in DEFAULT_STATUS_TABLE.items() if rule.action is Action.RETRY}
    assert retried == {429, 502, 503, 504}


def test_credentials_stop_the_run():
    stops = {code for code, rule in DEFAULT_STATUS_TABLE.items() if rule.action is Action.STOP}
    assert stops == {401, 403}


def test_mapping_overrides_win():
    overrides = {409: Rule(Action.REJECT, "slot no longer available"), 500: Rule(Action.RETRY, "safe here"),
                 418: Rule(Action.FAIL, "teapot")}
    assert rule_for(409, overrides) == Rule(Action.REJECT, "slot no longer available")
    assert rule_for(500, overrides).action is Action.RETRY
    assert rule_for(418, overrides).message == "teapot"
    assert rule_for(503, overrides) == DEFAULT_STATUS_TABLE[503]  # the rest keep their defaults


#: (phrases of a reason, a body's text, does the reason match). Phrases read like the provider's own wording.
REASON_PHRASES = [
    (["Account * does not exist"], "Account ACC-70002 does not exist.", True),
    (["Account * does not exist"], "ACCOUNT   acc-1\tdoes not exist", True),  # case and spacing ignored
    (["Account * does not exist"], "Account lookup failed. Table does not exist", False),  # * stays in one sentence
    (["Account * does not exist"], "Account x; does not exist", False),
    (["Account * does not exist"], "Account does not exist", False),  # * stands for some text between words
    (["is required"], "OrderType is required", True),
    (["is required", "is not a Work Order Type"], "OrderType '9' is not a Work Order Type", True),
    (["slot (A) taken"], "slot (A) taken", True),  # punctuation is literal, not a pattern
    (["slot (A) taken"], "slot A taken", False),
    (["a.c"], "abc", False),
    (["does not exist"], "", False),
]


@pytest.mark.parametrize(("phrases", "text", "matches"), REASON_PHRASES)
def test_reason_phrases(phrases, text, matches):
    assert Reason(Action.REJECT, tuple(phrases)).matches(text) is matches


def test_a_rules_reasons_decide_by_the_body_and_the_rest_keep_the_rule():
    rule = Rule(Action.UNKNOWN, "provider error (500)", (
        Reason(Action.REJECT, ("does not exist",), "refused"),
        Reason(Action.RETRY, ("try again later",)),
        Reason(Action.FAIL, ("does not exist", "gone")),  # never reached for "does not exist": the first match wins
    ))
    overrides = {500: rule}
    assert rule_for(500, overrides, "Account A does not exist") == Rule(Action.REJECT, "refused")
    assert rule_for(500, overrides, "Busy, try again later") == Rule(Action.RETRY, "provider error (500)")
    assert rule_for(500, overrides, "it is gone") == Rule(Action.FAIL, "provider error (500)")
    assert rule_for(500, overrides, "Internal error") is rule
    assert rule_for(500, overrides) is rule  # without a body the status decides


def test_status_words():
    assert [s.value for s in Status] == ["created", "accepted", "skipped", "invalid", "rejected", "failed", "unknown"]
    assert f"{Status.CREATED}" == "created" and str(Status.UNKNOWN) == "unknown"
    assert Status("rejected") is Status.REJECTED


@pytest.mark.parametrize(("status", "ok", "done"), [
    (Status.CREATED, True, True),
    (Status.ACCEPTED, True, True),
    (Status.SKIPPED, True, False),
    (Status.INVALID, False, False),
    (Status.REJECTED, False, False),
    (Status.FAILED, False, False),
    (Status.UNKNOWN, False, False),
])
def test_ok_and_done(status, ok, done):
    assert Outcome(status).ok is ok
    assert (status in OK_STATUSES) is ok
    assert (status in DONE_STATUSES) is done


def test_outcome_defaults():
    o = Outcome(Status.INVALID, "Email: is not valid", column_messages={"Email": ["is not valid"]})
    assert (o.provider_id, o.http_status, o.attempts) == (None, None, 0)
    assert Outcome(Status.CREATED).column_messages == {}
    # one shared empty mapping (a million-row run holds an outcome a row: issue 16), safe because read-only
    with pytest.raises(TypeError):
        Outcome(Status.CREATED).column_messages["Email"] = ["x"]  # type: ignore[index]
