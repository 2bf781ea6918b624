"""The approval page in headless Chromium (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import json
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium") and not __import__("os").path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


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

    # The crown jewel needs a lead: the analyst is refused...
    page.goto(f"{server.url}/ui")
    assert page.locator("#queue tbody tr").count() == 1
    page.click("#queue tr:has-text('isolate_host') a >> nth=0")
    page.click("button.approve")
    assert "needs a lead" in page.locator("#flash").inner_text()

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
    page = browser.new_page()
    page.goto(f"{server.url}/ui/login")
    page.fill("#token", kit.tokens["viewer"][1])
    page.click("button[type=submit]")
    page.click("#queue tbody tr a >> nth=0")
    assert page.locator("button.approve").count() == 0
    assert page.locator("#notes").inner_text()
