"""The web page in headless Chromium (Debian's chromium, driven by Playwright): queue, items, cases.

Set ``SOC_AGENT_SCREENSHOTS`` to a folder to keep a screenshot of each page the tests look at.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import make_alert

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
WIDTH = 1400
ATTACKER = "203.0.113.45"  # on the demo intel watchlist


@pytest.fixture
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium") and not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def _signed_in(browser, server, kit, role: str):
    """A page of its own (own cookies) at 1,400 px, signed in as ``role``."""
    page = browser.new_context(viewport={"width": WIDTH, "height": 900}).new_page()
    page.goto(f"{server.url}/ui/login")
    page.fill("#token", kit.tokens[role][1])
    page.click("button[type=submit]")
    return page


def _shot(page, name: str, full_page: bool = True) -> None:
    folder = os.environ.get("SOC_AGENT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)


def _page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def _travel(user: str, ip: str, alert_id: str, severity: str = "high", minutes_ago: float = 5) -> bytes:
    return make_alert("impossible_travel", [("user", user, "actor"), ("ip", ip, "src")], alert_id=alert_id,
                      severity=severity, minutes_ago=minutes_ago, vpn=False)


def _brute_force(n: int = 6) -> list[bytes]:
    """Failed ssh logins from a watchlisted address: the demo's earned autonomy blocks it on its own."""
    return [make_alert("auth_failure", [("ip", ATTACKER, "src"), ("user", "root", "target"),
                                        ("host", "web01.corp.example", "dst")],
                       alert_id=f"ev-{i}", kind="event", severity="low", minutes_ago=(n - i) * 5 / 60,
                       service="ssh", outcome="failure") for i in range(n)]


# ---- the existing round trip, with roles ---------------------------------------------------------


def test_analyst_rejects_one_item_and_a_lead_approves_another_and_sees_the_cases_update(kit, start_server,
                                                                                       browser):
    hostile = kit.exec_travel.replace(b'"title": "impossible travel"',
                                      b'"title": "<script>window.pwned=1</script>travel"')
    kit.seed(kit.crown_jewel, hostile)
    server = start_server()

    page = browser.new_page()
    page.goto(f"{server.url}/ui")
    assert page.url.endswith("/ui/login")
    page.fill("#token", kit.tokens["analyst"][1])
    page.click("button[type=submit]")
    rows = page.locator("#queue tbody tr")
    assert rows.count() == 2

    # The analyst rejects the executive's revoke_sessions with a comment.
    page.click("#queue tr:has-text('revoke_sessions') a >> nth=0")
    assert "executive identity involved" in page.content()
    assert page.evaluate("window.pwned") is None  # alert text is escaped, never run
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page.content()
    page.fill("#comment", "travel confirmed with the EA")
    page.click("button.reject")
    assert "rejected by bo.analyst" in page.locator("#flash").inner_text()
    assert page.locator("#comments").inner_text().count("travel confirmed with the EA") == 1
    assert "rejected" in page.locator("#actions").inner_text()

    # The crown jewel needs a lead: the analyst sees why and no buttons...
    page.goto(f"{server.url}/ui")
    assert page.locator("#queue tbody tr").count() == 1
    page.click("#queue tr:has-text('isolate_host') a >> nth=0")
    assert "needs a lead" in page.locator("#cannot-decide").inner_text()
    assert page.locator("button.approve").count() == 0 and page.locator("button.reject").count() == 0
    # ...and the server still refuses the post the page no longer offers.
    item_id = page.url.rsplit("/", 1)[1]
    refused = page.request.post(f"{server.url}/ui/approvals/{item_id}/decide", form={"decision": "approve"})
    assert refused.status == 403 and "needs a lead" in refused.text()

    # ...and a lead approves it; the case page shows the host contained.
    lead = browser.new_page()
    lead.goto(f"{server.url}/ui/login")
    lead.fill("#token", kit.tokens["lead"][1])
    lead.click("button[type=submit]")
    lead.click("#queue tr:has-text('isolate_host') a >> nth=0")
    assert "crown jewel" in lead.content()
    assert lead.locator("#evidence tbody tr").count() >= 1
    lead.fill("#comment", "isolating the DC, owner informed")
    lead.click("button.approve")
    # The two-person rule: the first lead's approval is recorded and the item waits for another lead.
    assert "awaiting a second approver" in lead.locator("#flash").inner_text()
    second = browser.new_page()
    second.goto(f"{server.url}/ui/login")
    second.fill("#token", kit.tokens["lead2"][1])
    second.click("button[type=submit]")
    assert "awaiting a second approver" in second.locator("#queue").inner_text()
    second.click("#queue tr:has-text('isolate_host') a >> nth=0")
    second.click("button.approve")
    assert "approved by di.lead" in second.locator("#flash").inner_text()
    assert second.locator("#case-status").inner_text() == "contained"
    assert "executed" in second.locator("#actions").inner_text()
    lead.goto(f"{server.url}/ui")
    assert "nothing is waiting" in lead.locator("#queue").inner_text()

    with server.client("viewer") as c:
        decided = c.get("/api/approvals", params={"status": ""}).json()
    assert sorted((d["action"], d["status"], d["decided_by"]) for d in decided) == [
        ("isolate_host", "approved", "ana.lead and di.lead"), ("revoke_sessions", "rejected", "bo.analyst")]
    assert json.dumps(decided)  # plain JSON all the way


def test_viewer_sees_the_queue_without_decision_buttons(kit, start_server, browser):
    kit.seed(kit.exec_travel)
    server = start_server()
    page = _signed_in(browser, server, kit, "viewer")
    assert page.locator("#queue input[type=checkbox]").count() == 0  # no bulk decision either
    page.click("#queue tbody tr a >> nth=0")
    assert page.locator("button.approve").count() == 0
    assert "only an analyst or a lead decides" in page.locator("#cannot-decide").inner_text()
    page.click("#case dd a")
    assert page.locator("#notes h2").count() >= 3
    assert page.locator("#case-forms").count() == 0 and page.locator("button.rollback").count() == 0


# ---- the queue ---------------------------------------------------------------------------------------


def _four_items(kit) -> dict[str, str]:
    """Three executives' impossible travel (revoke_sessions, an analyst decides) and a crown jewel's malware."""
    results = kit.seed(_travel("ceo.hart", "203.0.113.201", "t-1", "high", minutes_ago=30),
                       _travel("cfo.nguyen", "203.0.113.202", "t-2", "medium", minutes_ago=20),
                       _travel("cto.okafor", "203.0.113.203", "t-3", "high", minutes_ago=10),
                       kit.crown_jewel)
    pending = {r.action: r.case_id for r in results if r.status == "pending_approval"}
    assert len([r for r in results if r.status == "pending_approval"]) == 4, results
    return pending


def _column(page, attribute: str) -> list[str]:
    return page.eval_on_selector_all("#queue tbody tr", f"rows => rows.map(r => r.dataset.{attribute})")


def test_queue_shows_title_severity_and_target_sorts_filters_and_keeps_ids_on_one_line(kit, start_server,
                                                                                      browser):
    _four_items(kit)
    server = start_server()
    page = _signed_in(browser, server, kit, "analyst")
    table = page.locator("#queue").inner_text()
    for expected in ("impossible travel", "malware detected", "user:ceo.hart", "host:dc02.corp.example",
                     "critical", "medium", "impossible_travel", "lead"):
        assert expected in table, expected
    # Each case links to its page; the full case id is there, on one line.
    first_case = page.locator("#queue td.case a").first
    assert first_case.get_attribute("href").startswith("/ui/cases/case-")
    ids = page.eval_on_selector_all("#queue code.id, #queue td.id a",
                                    "els => els.map(e => [e.textContent, e.getClientRects().length])")
    assert len(ids) == 8 and all(rects == 1 for _, rects in ids), ids
    assert all(text.startswith("case-") and len(text) > 10 for text, _ in ids[1::2] if "-" in text)
    assert _page_width(page) <= WIDTH
    _shot(page, "queue")

    # Oldest first by default; by severity the critical crown jewel leads; by class the classes group.
    assert _column(page, "action") == ["revoke_sessions"] * 3 + ["isolate_host"]
    page.click("#sort-severity")
    assert _column(page, "severity") == ["critical", "high", "high", "medium"]
    page.click("#sort-class")
    assert _column(page, "class") == sorted(_column(page, "class"))
    # Filters narrow it; they combine with the sort.
    page.select_option("#f-action", "revoke_sessions")
    page.select_option("#f-severity", "high")
    page.click("#apply")
    assert _column(page, "action") == ["revoke_sessions", "revoke_sessions"]
    assert "severity=high" in page.url and "sort=class" in page.url
    page.goto(f"{server.url}/ui?class=malware&sort=age")
    assert _column(page, "action") == ["isolate_host"]


def test_bulk_decision_decides_each_item_alone_with_per_item_results_and_keeps_the_role_rules(
        kit, start_server, browser):
    _four_items(kit)
    server = start_server()
    analyst = _signed_in(browser, server, kit, "analyst")

    # Items of different classes or actions are refused together: nothing is decided.
    for box in analyst.locator("#queue input[type=checkbox]").all():
        box.check()
    analyst.click("#bulk-decision button.reject")
    assert "one class and one action" in analyst.locator("#flash").inner_text()
    with server.client("viewer") as c:
        assert len(c.get("/api/approvals").json()) == 4

    # Two of the executives' items, rejected at once with one comment: two results, each decided by bo.analyst.
    analyst.goto(f"{server.url}/ui?action=revoke_sessions")
    boxes = analyst.locator("#queue input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    analyst.fill("#bulk-comment", "travel booked, confirmed with the EAs")
    analyst.click("#bulk-decision button.reject")
    assert "2 of 2" in analyst.locator("#flash").inner_text()
    results = analyst.locator("#bulk-results tbody tr")
    assert results.count() == 2
    assert [results.nth(i).locator("td.status").inner_text() for i in range(2)] == ["rejected", "rejected"]
    _shot(analyst, "bulk-results")
    with server.client("viewer") as c:
        decided = [d for d in c.get("/api/approvals", params={"status": "rejected"}).json()]
        assert sorted(d["decided_by"] for d in decided) == ["bo.analyst", "bo.analyst"]
        assert all(d["comment"] == "travel confirmed with the EAs" or
                   d["comment"] == "travel booked, confirmed with the EAs" for d in decided)
        crown = next(d for d in c.get("/api/approvals").json() if d["action"] == "isolate_host")

    # The role rules hold item by item: an analyst's bulk approval of a lead-only item is refused...
    refused = analyst.request.post(f"{server.url}/ui/approvals/bulk",
                                   form={"ids": str(crown["id"]), "decision": "approve", "comment": "x"})
    assert refused.status == 200 and "needs a lead" in refused.text() and "0 of 1" in refused.text()
    # ...and a lead's is the first of the two approvals the crown jewel needs, not the whole decision.
    lead = _signed_in(browser, server, kit, "lead")
    lead.goto(f"{server.url}/ui?action=isolate_host")
    lead.locator("#queue input[type=checkbox]").first.check()
    lead.click("#bulk-decision button.approve")
    row = lead.locator("#bulk-results tbody tr").first
    assert row.locator("td.status").inner_text() == "pending"
    assert "awaiting a second approver" in row.inner_text()


# ---- one item ----------------------------------------------------------------------------------------

LONG = "A" * 400
HOSTILE_TITLE = "<img src=x onerror=\"window.pwned=2\"></pre><script>window.pwned=1</script> travel"


def test_item_page_fits_1400px_hides_buttons_from_the_wrong_role_and_shows_alerts_raw_and_escaped(
        kit, start_server, browser):
    wide = json.loads(_travel("ceo.hart", "203.0.113.201", "t-wide"))
    wide["title"] = f"{HOSTILE_TITLE} {'B' * 300}"  # the title reaches the evidence table, unbroken
    wide["attributes"]["user_agent"] = LONG  # one unbroken 400-character value
    wide["attributes"]["note"] = {"nested": [LONG, "</details><b id=injected>bold</b>"]}
    kit.seed(json.dumps(wide).encode(), kit.crown_jewel)
    server = start_server()

    analyst = _signed_in(browser, server, kit, "analyst")
    analyst.click("#queue tr:has-text('revoke_sessions') td.id a")
    assert _page_width(analyst) <= WIDTH
    assert analyst.locator("button.approve").count() == 1  # an analyst decides this one
    # The alert timeline lists the alert; its raw payload is pretty JSON, escaped, folded away until opened.
    alerts = analyst.locator("#alerts tbody tr")
    assert alerts.count() == 1 and "impossible_travel" in alerts.first.inner_text()
    raw = alerts.first.locator("pre.raw-json")
    assert not raw.is_visible()
    alerts.first.locator("details.raw summary").click()
    assert raw.is_visible()
    text = raw.inner_text()
    assert HOSTILE_TITLE.replace('"', '\\"') in text and '"user_agent": "' + LONG in text and "\n  " in text
    assert analyst.evaluate("window.pwned") is None
    assert analyst.locator("#injected").count() == 0 and analyst.locator("img").count() == 0
    assert _page_width(analyst) <= WIDTH  # still, with the raw alert open
    _shot(analyst, "item")

    # The crown jewel is a lead's: the analyst sees why, not the buttons.
    analyst.goto(f"{server.url}/ui")
    analyst.click("#queue tr:has-text('isolate_host') td.id a")
    assert analyst.locator("#decide").count() == 0
    assert "needs a lead" in analyst.locator("#cannot-decide").inner_text()
    lead = _signed_in(browser, server, kit, "lead")
    lead.goto(analyst.url)
    assert lead.locator("button.approve").count() == 1 and lead.locator("#cannot-decide").count() == 0
    _shot(analyst, "item-lead-only-as-analyst")


def test_item_page_says_when_the_action_is_already_in_effect(settings, kit, start_server, browser):
    from soc_agent.actions import CATALOG
    from soc_agent.pipeline import Pipeline
    from soc_agent.policy import PolicyRule
    from soc_agent.types import Entity, EntityKind, Outcome, ProposedAction

    pipeline = Pipeline(settings)
    try:
        spec = CATALOG["block_ip"]
        week = ProposedAction(name="block_ip", tier=spec.tier, capability=spec.capability, rollback=spec.rollback,
                              target=Entity(kind=EntityKind.IP, value=ATTACKER), params={"ttl_seconds": 7 * 86400})
        earlier = pipeline.services.executor.execute(week, "other-case", 1)
        pipeline.store.commit()
        pipeline.services.policy.rules.append(PolicyRule(name="blocks-need-a-person", when='action == "block_ip"',
                                                         outcome=Outcome.NEEDS_APPROVAL, reason="test"))
        line = make_alert("connection_to_known_bad_ip", [("ip", ATTACKER, "dst"), ("host", "wks-17", "src")],
                          alert_id="c2-1")
        assert pipeline.process_line(line)[0].status == "pending_approval"
    finally:
        pipeline.close()
    server = start_server()
    page = _signed_in(browser, server, kit, "analyst")
    page.click("#queue tbody tr td.id a")
    banner = page.locator("#in-effect").inner_text()
    assert f"already in effect (by action {earlier.id} of case other-case)" in banner
    assert "rejecting does not lift" in banner


# ---- one case ----------------------------------------------------------------------------------------


def test_case_page_shows_timeline_entities_actions_and_a_lead_rolls_back_what_an_analyst_cannot(
        kit, start_server, browser):
    results = kit.seed(*_brute_force())
    case_id = next(r.case_id for r in results if r.case_id and r.action == "block_ip")
    server = start_server()

    analyst = _signed_in(browser, server, kit, "analyst")
    analyst.goto(f"{server.url}/ui/cases/{case_id}")
    assert "alert" in analyst.locator("#timeline").inner_text() and "decision" in analyst.locator(
        "#timeline").inner_text()
    assert ATTACKER in analyst.locator("#entities").inner_text()
    assert "web01.corp.example" in analyst.locator("#entities").inner_text()
    assert "block_ip" in analyst.locator("#actions").inner_text()
    assert "allow" in analyst.locator("#verdicts").inner_text()
    assert analyst.locator("button.rollback").count() == 0
    assert "a lead rolls back" in analyst.locator("#actions").inner_text()
    action_id = analyst.locator("#actions tr[data-action-id]").first.get_attribute("data-action-id")
    refused = analyst.request.post(f"{server.url}/ui/cases/{case_id}/rollback", form={"action_id": action_id})
    assert refused.status == 403 and "needs a lead" in refused.text()
    assert _page_width(analyst) <= WIDTH

    lead = _signed_in(browser, server, kit, "lead")
    lead.goto(f"{server.url}/ui/cases/{case_id}")
    _shot(lead, "case")
    _shot(lead, "case-top", full_page=False)
    lead.click(f"#actions tr[data-action-id='{action_id}'] button.rollback")
    assert f"action {action_id} (block_ip on {ATTACKER}) rolled back by ana.lead: lifted" in \
        lead.locator("#flash").inner_text()
    assert "rolled_back" in lead.locator("#actions").inner_text()
    assert lead.locator("button.rollback").count() == 0
    assert "rollback" in lead.locator("#timeline").inner_text()
    assert "ana.lead" in lead.locator("#audit").text_content()
    with server.client("viewer") as c:
        assert c.get(f"/api/cases/{case_id}").json()["status"] != "contained"


def test_case_forms_comment_assign_close_and_reopen_with_who_and_when(kit, start_server, browser):
    results = kit.seed(kit.exec_travel)
    case_id = results[0].case_id
    server = start_server()
    page = _signed_in(browser, server, kit, "analyst")
    page.goto(f"{server.url}/ui/cases/{case_id}")
    assert "revoke_sessions" in page.locator("#approvals").inner_text()
    assert page.locator("#approvals a").first.get_attribute("href").startswith("/ui/approvals/")

    page.fill("#comment-text", "called the CEO's assistant <b>now</b>")
    page.click("#comment-form button")
    assert "comment added by bo.analyst" in page.locator("#flash").inner_text()
    assert "called the CEO's assistant <b>now</b>" in page.locator("#comments").inner_text()

    page.fill("#assignee", "cy.analyst")
    page.click("#assign-form button")
    assert page.locator("#case-assignee").inner_text() == "cy.analyst"

    page.select_option("#disposition", "benign_positive")
    page.fill("#close-reason", "travel booked through the corporate agency")
    page.click("#close-form button")
    assert page.locator("#case-status").inner_text() == "closed"
    assert page.locator("#case-label").inner_text() == "benign_positive"
    history = page.locator("#history").inner_text()
    assert "benign_positive" in history and "bo.analyst" in history and "travel booked" in history
    assert "close" in page.locator("#timeline").inner_text()
    assert "benign_positive" in page.locator("#audit").text_content()
    _shot(page, "case-closed")

    page.fill("#reopen-reason", "new login from the same address")
    page.click("#reopen-form button")
    assert page.locator("#case-status").inner_text() != "closed"
    assert page.locator("#case-label").inner_text() == "-"
    assert page.locator("#history tbody tr").count() == 3  # assign, close, reopen: the close stays on record

    # A viewer reads the case but gets no forms, and a forged post is refused by the case actions.
    viewer = _signed_in(browser, server, kit, "viewer")
    viewer.goto(f"{server.url}/ui/cases/{case_id}")
    assert viewer.locator("#case-forms").count() == 0
    forged = viewer.request.post(f"{server.url}/ui/cases/{case_id}/comment", form={"text": "hi"})
    assert forged.status == 403


def test_notes_render_as_html_and_a_hostile_title_stays_inert_text(kit, start_server, browser):
    title = ('<script>window.pwned=1</script> <img src=x onerror="window.pwned=2"> '
             '[click me](javascript:window.pwned=3) [docs](https://evil.example/x) **bold**')
    hostile = json.loads(kit.exec_travel)
    hostile["title"] = title
    case_id = kit.seed(json.dumps(hostile).encode())[0].case_id
    server = start_server()
    page = _signed_in(browser, server, kit, "analyst")
    response = page.goto(f"{server.url}/ui/cases/{case_id}")
    assert "default-src 'none'" in response.headers["content-security-policy"]  # no script could run anyway
    notes = page.locator("#notes")
    # Rendered: headings, lists and the actions table are HTML elements, not Markdown source.
    assert notes.locator("h1").count() == 1 and notes.locator("h2").count() >= 5
    assert notes.locator("li").count() >= 1 and notes.locator("table").count() == 1
    assert "## Summary" not in notes.inner_text()
    # Inert: the title's markup is text, and nothing from it became an element or a link.
    assert "<script>window.pwned=1</script>" in notes.locator("h1").inner_text()
    assert page.evaluate("window.pwned") is None
    assert page.locator("script").count() == 0
    assert page.locator("[onerror]").count() == 0 and page.locator("img").count() == 0
    assert notes.locator("a").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert "javascript:window.pwned=3" in notes.inner_text()
