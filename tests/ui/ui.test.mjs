// Browser tests of the /ui score builder: a real headless Chromium (Debian's
// package, driven by playwright-core) against a real `scorehook serve` on a
// temporary data dir, with a local action receiver that answers 400 so every
// action goes dead at once. The steps run in order and share one page, as a
// CRM admin would use it: sign in, build a profile, a trigger, simulate,
// publish, send webhooks, read the leaderboard and a ledger, replay.
//
// Run by scripts/ui-test.sh (which installs what this needs); it takes the
// binary from SCOREHOOK_BIN and the browser from CHROMIUM.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.SCOREHOOK_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOT_DIR || 'target/ui-screenshots';
const OPERATOR = 'ui-test-operator-token-0123456789abcdef';
const TENANT = 'acme';
const SECRET = 'ui-test-webhook-secret-0123';
// A safety net only: every wait below ends as soon as its condition holds.
const PATIENCE = 15_000;

let server;
let base;
let dataDir;
let receiver;
let tenantToken;
let browser;
let page;
const pageErrors = []; // uncaught errors in the page: none is expected
const hits = []; // action ids, in the order the receiver got them
const hitWaiters = [];

/** Resolves once the receiver has been sent `id` at least `count` times. */
function receivedTimes(id, count) {
  const check = () => hits.filter((h) => h === id).length >= count;
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`action ${id} not received ${count} times`)), PATIENCE);
    hitWaiters.push(() => { if (check()) { clearTimeout(timer); resolve(); return true; } return false; });
  });
}

function startReceiver() {
  return new Promise((resolve) => {
    const srv = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        try { hits.push(JSON.parse(body).id); } catch (e) { hits.push(null); }
        // 400: a permanent refusal, so the action is dead after one attempt.
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"error":"refused by the test receiver"}');
        for (let i = hitWaiters.length - 1; i >= 0; i -= 1) if (hitWaiters[i]()) hitWaiters.splice(i, 1);
      });
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['serve', '--port', '0', '--data-dir', dataDir], {
      // The test's action receiver listens on loopback: the operator's setting lets the server reach it.
      env: { ...process.env, SCOREHOOK_ADMIN_TOKEN: OPERATOR, RUST_LOG: 'warn', SCOREHOOK_ALLOW_PRIVATE_TARGETS: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) resolve({ child, url: m[1] });
    });
    child.on('exit', (code) => reject(new Error(`scorehook serve exited with ${code}`)));
  });
}

async function webhook(interactions) {
  const body = JSON.stringify(interactions);
  const ts = Math.floor(Date.now() / 1000);
  const sig = createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex');
  const res = await fetch(`${base}/v1/webhooks/generic/${TENANT}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'X-Scorehook-Timestamp': String(ts), 'X-Scorehook-Signature': `v1=${sig}` },
    body,
  });
  const text = await res.text();
  assert.equal(res.status, 202, text);
  return JSON.parse(text);
}

const event = (id, type, contact, attributes) => ({
  id, type, contact_id: contact, occurred_at: new Date().toISOString(), ...(attributes ? { attributes } : {}),
});

const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

/** The error text shown next to a control (its aria-describedby slot). */
async function errorNextTo(control) {
  const ids = (await control.getAttribute('aria-describedby')) || '';
  const texts = await Promise.all(ids.split(' ').filter(Boolean).map((id) => page.locator(`[id="${id}"]`).textContent()));
  return texts.join(' ');
}

const view = (name) => page.locator(`#${name}-view`);
const rowTexts = (selector) => page.locator(selector).evaluateAll((rows) => rows.map((r) => r.textContent));

describe('score builder page', () => {
  before(async () => {
    assert.ok(BIN, 'SCOREHOOK_BIN must name the scorehook binary');
    mkdirSync(SHOTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), 'scorehook-ui-'));
    receiver = await startReceiver();
    const started = await startServer();
    server = started.child;
    base = started.url;
    const res = await fetch(`${base}/v1/tenants/${TENANT}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' },
      body: JSON.stringify({ provider: 'generic', webhook_secret: SECRET, actions_url: `http://127.0.0.1:${receiver.address().port}/actions` }),
    });
    assert.equal(res.status, 201);
    tenantToken = (await res.json()).token;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(PATIENCE);
    page.on('pageerror', (e) => pageErrors.push(e));
  });

  after(async () => {
    try {
      assert.deepEqual(pageErrors.map(String), []);
    } finally {
      if (browser) await browser.close();
      if (server) { server.removeAllListeners('exit'); server.kill('SIGTERM'); }
      if (receiver) receiver.close();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('is served with a strict content security policy and refuses a wrong token', async () => {
    const response = await page.goto(`${base}/ui`);
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-security-policy'], /^default-src 'none'; script-src 'self'/);
    // The sign-in says how to sign in locally.
    const hint = page.locator('#signin-local-hint');
    assert.equal(await hint.isVisible(), true);
    assert.match(await hint.innerText(), /SCOREHOOK_ADMIN_TOKEN.*dev-admin-token-for-local-use-only.*demo/s);
    await page.getByLabel('Tenant').fill(TENANT);
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#signin-error', { hasText: 'not accepted' }).waitFor();
    assert.equal(await page.locator('#tabs').isVisible(), false);
    await shot('01-sign-in');
  });

  it('signs in with the tenant token, kept in session storage and never in the URL', async () => {
    await page.getByLabel('Admin token').fill(tenantToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#tabs').waitFor();
    await page.locator('#session-tenant', { hasText: TENANT }).waitFor();
    const stored = await page.evaluate(() => sessionStorage.getItem('scorehook.session'));
    assert.equal(JSON.parse(stored).token, tenantToken);
    assert.ok(!page.url().includes(tenantToken));
    // A reload signs back in from the tab's session storage.
    await page.reload();
    await page.locator('#tabs').waitFor();
    await page.locator('#profiles-view').waitFor();
  });

  it('creates a profile with two rules through the form, with a 422 shown next to the bad field', async () => {
    await view('profiles').getByRole('button', { exact: true, name: 'New profile' }).click();
    await view('profiles').getByLabel('Profile id').fill('engagement');
    await view('profiles').getByLabel('Name', { exact: true }).fill('Engagement');
    await view('profiles').getByLabel('Description').fill('How warm a contact is');
    await view('profiles').getByRole('button', { exact: true, name: 'Add rule' }).click();
    const first = page.locator('fieldset.rule').nth(0);
    await first.getByLabel('Rule id').fill('opened');
    await first.getByLabel('Interaction type').selectOption('email.opened');
    await first.getByLabel('Points', { exact: true }).fill('1');
    await first.getByLabel('Expires in').fill('soon');
    await view('profiles').getByRole('button', { exact: true, name: 'Add rule' }).click();
    const second = page.locator('fieldset.rule').nth(1);
    await second.getByLabel('Rule id').fill('pricing');
    await second.getByLabel('Interaction type').selectOption('page.visited');
    await second.getByRole('button', { name: 'Add attribute condition' }).click();
    await second.getByLabel('Attribute', { exact: true }).fill('url');
    await second.getByLabel('Operator').selectOption('contains');
    await second.getByLabel('Value', { exact: true }).fill('/pricing');
    await second.getByLabel('Points', { exact: true }).fill('10');
    await second.getByLabel('Once per contact').check();

    const saved = page.waitForResponse((r) => r.url().endsWith('/profiles/engagement') && r.request().method() === 'PUT');
    await view('profiles').getByRole('button', { exact: true, name: 'Save draft' }).click();
    const rejected = await saved;
    assert.equal(rejected.status(), 422);
    assert.equal((await rejected.json()).error.path, 'rules[0].expires_in');
    const expires = first.getByLabel('Expires in');
    await page.locator('fieldset.rule [aria-invalid="true"]').waitFor();
    assert.equal(await expires.getAttribute('aria-invalid'), 'true');
    assert.match(await errorNextTo(expires), /duration "soon" is invalid/);
    // Nothing else is marked, and the offending field has the focus.
    assert.equal(await page.locator('[aria-invalid="true"]').count(), 1);
    assert.equal(await expires.evaluate((el) => el === document.activeElement), true);
    await shot('02-profile-422');

    await expires.fill('30d');
    await view('profiles').getByRole('button', { exact: true, name: 'Save draft' }).click();
    await page.locator('#status', { hasText: 'Profile engagement saved as draft version 1.' }).waitFor();
    assert.equal(await page.locator('[aria-invalid="true"]').count(), 0);
    const row = page.locator('#profiles-table tr[data-profile="engagement"]');
    await row.waitFor();
    assert.match(await row.textContent(), /Engagement.*contact.*draft.*1/);
    // What the API stored is what the form said.
    const stored = await (await fetch(`${base}/v1/tenants/${TENANT}/profiles/engagement`, {
      headers: { authorization: `Bearer ${tenantToken}` },
    })).json();
    assert.deepEqual(stored.draft.rules, [
      { id: 'opened', when: { type: 'email.opened' }, points: 1, expires_in: '30d' },
      { id: 'pricing', when: { type: 'page.visited', attributes: { url: { contains: '/pricing' } } }, points: 10, once: true },
    ]);
    await shot('03-profile-draft');
  });

  it('saves a score trigger with an action through the form', async () => {
    await page.locator('#tabs').getByRole('button', { exact: true, name: 'Triggers' }).click();
    await view('triggers').getByRole('button', { exact: true, name: 'New trigger' }).click();
    await view('triggers').getByLabel('Trigger id').fill('hot');
    await view('triggers').getByLabel('Name', { exact: true }).fill('Hot lead');
    await view('triggers').getByLabel('Fires on').selectOption('score');
    await view('triggers').getByLabel('Profile', { exact: true }).selectOption('engagement');
    await view('triggers').getByLabel('Score is').selectOption('gte');
    await view('triggers').getByLabel('Value', { exact: true }).fill('10');
    await view('triggers').getByRole('button', { exact: true, name: 'Add action' }).click();
    await view('triggers').getByLabel('Action type', { exact: true }).selectOption('add_tag');
    await view('triggers').getByLabel('Tag', { exact: true }).fill('Caliente');
    await view('triggers').getByRole('button', { exact: true, name: 'Save trigger' }).click();
    await page.locator('#status', { hasText: 'Trigger hot saved.' }).waitFor();
    const row = page.locator('#triggers-table tr[data-trigger="hot"]');
    await row.waitFor();
    assert.match(await row.textContent(), /Hot lead.*score engagement greater or equal to 10.*add_tag/);
    // Opened again, the form shows what was stored.
    await row.getByRole('button', { name: 'Edit trigger hot' }).click();
    await view('triggers').locator('#trigger-editor-title', { hasText: 'Trigger hot' }).waitFor();
    assert.equal(await view('triggers').getByLabel('Value', { exact: true }).inputValue(), '10');
    assert.equal(await view('triggers').getByLabel('Tag', { exact: true }).inputValue(), 'Caliente');
    assert.equal(await view('triggers').getByLabel('Trigger id').isDisabled(), true);
    await shot('04-triggers');
  });

  it('simulates the draft over posted webhooks: distribution, top contacts and trigger counts', async () => {
    await webhook([
      event('a1', 'email.opened', 'alice'), event('a2', 'email.opened', 'alice'), event('a3', 'email.opened', 'alice'),
      event('a4', 'page.visited', 'alice', { url: 'https://x.test/pricing' }),
      event('b1', 'email.opened', 'bob'), event('b2', 'email.opened', 'bob'), event('b3', 'email.opened', 'bob'),
      event('c1', 'email.opened', 'carol'),
    ]);
    await page.locator('#tabs').getByRole('button', { exact: true, name: 'Profiles' }).click();
    await view('profiles').getByRole('button', { exact: true, name: 'Edit profile engagement' }).click();
    await view('profiles').getByRole('button', { exact: true, name: 'Simulate' }).click();
    await view('profiles').getByLabel('Band width').fill('5');
    await view('profiles').getByRole('button', { exact: true, name: 'Run simulation' }).click();
    await page.locator('#simulation-chart').waitFor();
    assert.equal(await page.locator('#simulation-chart [data-band="0"]').textContent(), '2 contacts');
    assert.equal(await page.locator('#simulation-chart [data-band="10"]').textContent(), '1 contact');
    assert.deepEqual(await rowTexts('#simulation-top tbody tr'), ['alice13', 'bob3', 'carol1']);
    assert.deepEqual(await rowTexts('#simulation-triggers tbody tr'), ['hot1']);
    await shot('05-simulation');
  });

  it('publishes the profile and follows its recompute to the end', async () => {
    await view('profiles').getByRole('button', { exact: true, name: 'Publish' }).click();
    await page.locator('#status', { hasText: 'Profile engagement published (version 1).' }).waitFor();
    await page.locator('#profile-recompute', { hasText: 'Recompute of version 1: done' }).waitFor();
    assert.match(await page.locator('#profile-lifecycle').textContent(), /published/);
    assert.match(await page.locator('#profiles-table tr[data-profile="engagement"]').textContent(), /published/);
    await shot('06-profile-published');
  });

  it('shows the leaderboard in score order, pages with the cursor and filters by range', async () => {
    // Scored live, after the publish: dave enters "hot" (>= 10) and fires add_tag.
    await webhook([event('d1', 'page.visited', 'dave', { url: 'https://x.test/pricing' })]);
    await page.locator('#tabs').getByRole('button', { exact: true, name: 'Contacts' }).click();
    await view('contacts').getByLabel('Profile', { exact: true }).selectOption('engagement');
    await view('contacts').getByLabel('Per page').selectOption('2');
    await view('contacts').getByRole('button', { exact: true, name: 'Show' }).click();
    await page.locator('#contacts-table tbody tr[data-subject="alice"]').waitFor();
    assert.deepEqual(await page.locator('#contacts-table tbody tr').evaluateAll((rows) => rows.map((r) => [r.dataset.subject, r.querySelector('[data-score]').textContent])),
      [['alice', '13'], ['dave', '10']]);
    await view('contacts').getByRole('button', { exact: true, name: 'Next page' }).click();
    await page.locator('#contacts-table tbody tr[data-subject="bob"]').waitFor();
    assert.deepEqual(await page.locator('#contacts-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.subject)), ['bob', 'carol']);
    assert.equal(await view('contacts').getByRole('button', { exact: true, name: 'Next page' }).isDisabled(), true);

    await view('contacts').getByLabel('Per page').selectOption('50');
    await view('contacts').getByLabel('Min score').fill('2');
    await view('contacts').getByLabel('Max score').fill('11');
    await view('contacts').getByRole('button', { exact: true, name: 'Show' }).click();
    // dave is not on the page shown before (bob, carol): his row means the filtered page has rendered.
    await page.locator('#contacts-table tbody tr[data-subject="dave"]').waitFor();
    assert.deepEqual(await page.locator('#contacts-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.subject)), ['dave', 'bob']);
    await shot('07-contacts');
  });

  it("opens a contact's scores with the ledger that explains them", async () => {
    await view('contacts').getByRole('button', { exact: true, name: 'dave' }).click();
    const ledger = page.locator('#contact-detail table[data-profile="engagement"]');
    await ledger.waitFor();
    assert.equal(await page.locator('#contact-detail h4').textContent(), 'engagement: score 10');
    assert.deepEqual(await ledger.locator('tbody tr td').evaluateAll((cells) => cells.map((c) => c.textContent)).then((c) => [c[0], c[1], c[3], c[5]]),
      ['pricing', '10', 'd1', 'never']);
    await shot('08-contact-ledger');
  });

  it('lists the dead action with its attempt and replays it', async () => {
    await page.locator('#tabs').getByRole('button', { exact: true, name: 'Actions' }).click();
    await view('actions').getByLabel('Status', { exact: true }).selectOption('dead');
    await view('actions').getByRole('button', { exact: true, name: 'Show' }).click();
    // The log refreshes itself while on screen, so dave's action appears once it is dead.
    const row = page.locator('#actions-table tr[data-status="dead"]', { hasText: 'dave' });
    await row.waitFor();
    assert.match(await row.textContent(), /add_tag.*Caliente.*hot.*dave.*dead.*HTTP 400/);
    const id = await row.getAttribute('data-action');
    await receivedTimes(id, 1);
    await shot('09-actions-dead');
    const replayed = page.waitForResponse((r) => r.url().endsWith(`/actions/${id}/replay`));
    await row.getByRole('button', { name: `Replay action ${id}` }).click();
    assert.equal((await replayed).status(), 202);
    await page.locator('#status', { hasText: `Action ${id} replayed: now pending.` }).waitFor();
    // The replay is real: the receiver gets the same action id a second time.
    await receivedTimes(id, 2);
    await shot('10-actions-replayed');
  });

  it('signs out, forgetting the token, and back in with the operator token and a tenant name', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#signin-view').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('scorehook.session')), null);
    assert.equal(await page.locator('#tabs').isVisible(), false);
    await page.getByLabel('Tenant').fill(TENANT);
    await page.getByLabel('Admin token').fill(OPERATOR);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#tabs').waitFor();
    await page.locator('#tabs').getByRole('button', { exact: true, name: 'Profiles' }).click();
    await page.locator('#profiles-table tr[data-profile="engagement"]', { hasText: 'published' }).waitFor();
  });
});
