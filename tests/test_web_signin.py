"""Sign-in throttling: after a few failed sign-ins for one name (or many from one address) the page makes the next
attempt wait, says so, and does not even check the password; a success clears the count. The clock is the
test's, so nothing here waits."""
from __future__ import annotations

from starlette.testclient import TestClient

from flows.web.auth import SignInThrottle

from .web_support import PASSWORDS, csrf_of, make_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempt(client, name: str, password: str):
    page = client.get("/login")
    return client.post("/login", data={"csrf": csrf_of(page.text), "username": name, "password": password},
                       follow_redirects=False)


def test_after_three_wrong_passwords_the_right_one_must_wait_and_the_page_says_so(tmp_path):
    clock = Clock()
    app = make_app(tmp_path, throttle=SignInThrottle(limit=3, wait=30, clock=clock))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for _ in range(3):
            assert attempt(client, "ann", "wrong").status_code == 401
        r = attempt(client, "ann", PASSWORDS["ann"])  # right, but too soon: refused without a check
        assert r.status_code == 429 and r.headers["retry-after"] == "30"
        assert "Too many failed sign-ins" in r.text and "wait 30 s" in r.text
        assert "booking_session" not in r.cookies
        assert attempt(client, "bob", PASSWORDS["bob"]).status_code == 303  # another name is not held up
        clock.now += 31
        assert attempt(client, "ann", "wrong again").status_code == 401  # free again, and the wait doubles
        r = attempt(client, "ann", PASSWORDS["ann"])
        assert r.status_code == 429 and r.headers["retry-after"] == "60"
        clock.now += 61
        assert attempt(client, "ann", PASSWORDS["ann"]).status_code == 303
        assert attempt(client, "ann", "wrong").status_code == 401  # the success cleared the count: one failure
        assert attempt(client, "ann", PASSWORDS["ann"]).status_code == 303
        actions = [a[2] for a in app.state.store.actions()]
    assert actions.count("sign-in throttled") == 2


def test_many_failures_from_one_address_hold_up_every_name_from_it():
    clock = Clock()
    throttle = SignInThrottle(limit=5, ip_limit=4, wait=10, clock=clock)
    for name in ("a", "b", "c", "d"):
        throttle.failed(name, "10.0.0.7")
    assert throttle.wait_left("e", "10.0.0.7") == 10
    assert throttle.wait_left("e", "10.0.0.8") == 0
    assert throttle.wait_left("a", "10.0.0.8") == 0  # one failure for "a": below its own limit
    throttle.succeeded("e", "10.0.0.7")
    assert throttle.wait_left("e", "10.0.0.7") == 0
