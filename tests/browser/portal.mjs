// End-to-end check of Certkeeper's web portal in a real headless browser.
//
// Drives Debian's Chromium through playwright-core against a running
// certkeeper daemon and walks the portal the way its users would: signing in
// (also by keyboard alone), seeing only the menus their role allows, a
// subscriber requesting a certificate, a department admin approving it and
// following it to the issued certificate, acknowledging an expiry alert, an
// auditor downloading reports, the primary admin's administration page, the
// phone layout, and signing out.
//
// Run:   cd tests/browser && npm ci && node portal.mjs
// Input (environment):
//   CERTKEEPER_URL    base URL of the daemon, e.g. http://127.0.0.1:8443
//   CERTKEEPER_USERS  JSON {"primary":{"name","password"},"department":…,
//                     "auditor":…,"subscriber":…,"other_department":…}
//   REQUEST_NAME      DNS name the subscriber requests (unit `web`, needs approval)
//   ALERT_SUBJECT     subject CN of an imported certificate in `web` with an open alert
//   SCREENSHOT_DIR    where screenshots (and downloaded reports) are saved
//   CHROMIUM          optional, browser binary (default /usr/bin/chromium)
//   PORTAL_TIMEOUT_S  optional, overall time limit in seconds (default 240)
//
// Output: one line per check, `ok - <what>`; at the first failure
// `not ok - <what>: <details>` followed by the page's URL and text (and a
// `failure.png` screenshot), exit status 1. Exit status 0 when all passed.

import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

// ---------------------------------------------------------------------------
// Settings

const ACTION_TIMEOUT_MS = 15_000; // any single click, fill or page load
const ISSUANCE_TIMEOUT_MS = 90_000; // approval -> issued certificate
const RELOAD_EVERY_MS = 1_500;
const OVERALL_TIMEOUT_MS = Number(process.env.PORTAL_TIMEOUT_S || 240) * 1000;

// The role each user must be shown as in `#whoami`.
const ROLES = {
  primary: 'primary_admin',
  department: 'department_admin',
  auditor: 'auditor',
  subscriber: 'subscriber',
  other_department: 'department_admin',
};

// Navigation links every signed-in role has (path -> label).
const COMMON_NAV = ['/ui/', '/ui/certificates', '/ui/requests', '/ui/alerts', '/ui/reports'];

const REPORT_KINDS = ['inventory', 'expiring', 'units', 'readiness47', 'history', 'org-units', 'findings'];

const LAUNCH_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ---------------------------------------------------------------------------
// Reporting: check(what, fn) prints `ok - what` or fails the whole run.

let passed = 0;
let browser = null;
let current = null; // the page a failure report describes
let screenshotDir = process.env.SCREENSHOT_DIR || 'screenshots';
let finished = false;

/** Makes `page` the one a failure report shows (URL, text, screenshot). */
function on(page) {
  current = page;
  return page;
}

async function check(what, fn) {
  try {
    await fn();
  } catch (err) {
    await fail(what, err);
  }
  passed += 1;
  console.log(`ok - ${what}`);
}

/** Prints the failure with what the user was looking at, then exits 1. */
async function fail(what, err) {
  if (finished) return new Promise(() => {}); // already reporting or done: wait for exit
  finished = true;
  const details = String(err && err.message ? err.message : err).split('\n')[0];
  console.log(`not ok - ${what}: ${details}`);
  if (current && !current.isClosed()) {
    console.log(`# page: ${current.url()}`);
    try {
      const text = await withTimeout(current.evaluate(() => document.body ? document.body.innerText : ''), 3000);
      console.log('# page text (first 2000 chars):');
      for (const line of String(text).slice(0, 2000).split('\n')) console.log(`#   ${line}`);
    } catch (e) {
      console.log(`# (page text unavailable: ${String(e.message || e).split('\n')[0]})`);
    }
    try {
      const file = path.join(screenshotDir, 'failure.png');
      await current.screenshot({ path: file, fullPage: true, timeout: 3000 });
      console.log(`# screenshot: ${file}`);
    } catch (e) {
      console.log(`# (screenshot failed: ${String(e.message || e).split('\n')[0]})`);
    }
  }
  if (err && err.stack && process.env.PORTAL_DEBUG) console.log(err.stack.replace(/^/gm, '# '));
  console.log(`portal: ${passed} passed, 1 failed`);
  try { await withTimeout(browser?.close(), 3000); } catch { /* exiting anyway */ }
  process.exit(1);
}

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const norm = (s) => String(s ?? '').replace(/\s+/g, ' ').trim();

// The whole run stops by itself rather than hang.
setTimeout(() => {
  fail(`whole run finished within ${OVERALL_TIMEOUT_MS / 1000} s`, new Error('overall time limit reached'));
  setTimeout(() => process.exit(1), 15_000).unref();
}, OVERALL_TIMEOUT_MS).unref();

// ---------------------------------------------------------------------------
// Inputs

let BASE, USERS, REQUEST_NAME, ALERT_SUBJECT;

await check('environment gives URL, users, request name, alert subject and screenshot dir', () => {
  for (const v of ['CERTKEEPER_URL', 'CERTKEEPER_USERS', 'REQUEST_NAME', 'ALERT_SUBJECT', 'SCREENSHOT_DIR']) {
    assert(process.env[v], `${v} is not set`);
  }
  BASE = process.env.CERTKEEPER_URL.replace(/\/+$/, '');
  USERS = JSON.parse(process.env.CERTKEEPER_USERS);
  for (const key of Object.keys(ROLES)) {
    assert(USERS[key]?.name && USERS[key]?.password, `CERTKEEPER_USERS has no name/password for "${key}"`);
  }
  REQUEST_NAME = process.env.REQUEST_NAME.trim();
  ALERT_SUBJECT = process.env.ALERT_SUBJECT.trim();
  screenshotDir = process.env.SCREENSHOT_DIR;
  mkdirSync(screenshotDir, { recursive: true });
});

const url = (p) => new URL(p, BASE + '/').href;
const pathOf = (u) => new URL(u).pathname;

// ---------------------------------------------------------------------------
// Browser helpers

await check('Chromium starts headless', async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: LAUNCH_ARGS,
    headless: true,
    timeout: 30_000,
  });
});

/** A fresh browser profile (own cookies) for one user. */
async function newContext(options = {}) {
  const context = await browser.newContext({ baseURL: BASE, acceptDownloads: true, ...options });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
  return context;
}

/** Clicks something that submits a form and waits for the resulting page. */
async function submitAndWait(page, clickable) {
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    clickable.click(),
  ]);
  return response;
}

/** Opens a portal page and returns the HTTP response of the final page. */
async function open(page, p) {
  on(page);
  const response = await page.goto(p);
  assert(response, `no response for ${p}`);
  return response;
}

async function expectOk(response, what) {
  assert(response.status() === 200, `${what} answered HTTP ${response.status()} (expected 200)`);
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(screenshotDir, name), fullPage: true });
}

/** Signs in by filling the login form; returns the page on the dashboard. */
async function signIn(context, user) {
  const page = on(await context.newPage());
  await open(page, '/ui/login');
  await page.locator('#login input[name="name"]').fill(user.name);
  await page.locator('#login input[name="password"]').fill(user.password);
  const response = await submitAndWait(page, page.locator('#login button[type="submit"]'));
  assert(pathOf(page.url()) === '/ui/', `after signing in the browser is on ${page.url()} (HTTP ${response?.status()}), not the dashboard /ui/`);
  return page;
}

/** Text of `#whoami`, whitespace collapsed. */
async function whoami(page) {
  return norm(await page.locator('#whoami').innerText());
}

/** Paths of the links in the main navigation. */
async function navPaths(page) {
  return page.locator('nav[aria-label="Main"] a').evaluateAll((links) =>
    links.map((a) => new URL(a.href, location.href).pathname));
}

/** The value of the CSRF token the page carries (from the sign-out form). */
async function csrfToken(page) {
  const token = await page.locator('#logout input[name="_csrf"]').getAttribute('value');
  assert(token, 'the sign-out form carries no _csrf value');
  return token;
}

/** Request ids of the rows in `#requests`. */
async function requestIds(page) {
  return page.locator('#requests tr[data-request-id]').evaluateAll((rows) =>
    rows.map((r) => r.getAttribute('data-request-id')));
}

/** A CSS attribute-value string for `value` (quotes and backslashes escaped). */
const cssString = (value) => JSON.stringify(String(value));

const requestRow = (page, id) => page.locator(`#requests tr[data-request-id=${cssString(id)}]`);

async function cellText(row, selector) {
  const cell = row.locator(selector);
  if ((await cell.count()) === 0) return null;
  return norm(await cell.first().innerText());
}

/** Makes sure the page text never shows private key material. */
async function expectNoPrivateKey(page) {
  const html = await page.content();
  assert(!html.includes('PRIVATE KEY'), 'the page contains the text "PRIVATE KEY"');
}

/** The page fits the phone screen: no sideways scrolling. */
async function expectNoHorizontalOverflow(page) {
  const m = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  // A phone browser widens its layout viewport to the content (or to 980 px
  // without <meta name="viewport" content="width=device-width">), which would
  // hide overflow from the scrollWidth test below: the page is then zoomed out.
  assert(m.innerWidth <= 391,
    `the page lays out ${m.innerWidth} px wide on a 390 px phone (content ${m.scrollWidth} px; ` +
    'too wide content or no <meta name="viewport" content="width=device-width">): the user sees it zoomed out');
  assert(m.scrollWidth <= m.innerWidth + 1,
    `page is ${m.scrollWidth} px wide but the screen is ${m.innerWidth} px: the user must scroll sideways`);
}

// Sessions by user key, filled in step 2.
const pages = {};

// ---------------------------------------------------------------------------
// 0. Not signed in: every portal page sends you to the sign-in page.

{
  const context = await newContext();
  const page = on(await context.newPage());

  await check('not signed in: / leads to the sign-in page /ui/login', async () => {
    await open(page, '/');
    assert(pathOf(page.url()) === '/ui/login', `ended on ${page.url()}`);
    assert(await page.locator('form#login').count() === 1, 'no form#login on the sign-in page');
  });

  await check('not signed in: /ui/certificates redirects (303) to /ui/login', async () => {
    const r = await page.request.get(url('/ui/certificates'), { maxRedirects: 0 });
    assert(r.status() === 303, `HTTP ${r.status()} (expected 303)`);
    const loc = r.headers()['location'] || '';
    assert(pathOf(new URL(loc, BASE).href) === '/ui/login', `Location: ${loc}`);
  });

  // 1b. A wrong password keeps you on the sign-in page with an error.
  await check('wrong password: HTTP 401, an error is shown, still on /ui/login', async () => {
    await open(page, '/ui/login');
    await page.locator('#name').fill(USERS.primary.name);
    await page.locator('#password').fill(USERS.primary.password + '-wrong');
    const response = await submitAndWait(page, page.locator('#login button[type="submit"]'));
    assert(response?.status() === 401, `HTTP ${response?.status()} (expected 401)`);
    assert(pathOf(page.url()) === '/ui/login', `now on ${page.url()}`);
    const error = page.locator('.error[role="alert"]');
    assert(await error.count() >= 1, 'no .error[role="alert"] element');
    assert(await error.first().isVisible(), 'the error is not visible');
    assert(await page.locator('#whoami').count() === 0, 'the page shows someone as signed in');
  });
  await context.close();
}

// ---------------------------------------------------------------------------
// 1. Keyboard-only sign-in as the primary admin.

{
  const context = await newContext();
  const page = on(await context.newPage());
  await open(page, '/ui/login');

  await check('keyboard: Tab from the top of the sign-in page reaches the name field', async () => {
    for (let i = 0; i < 10; i++) {
      if (await page.evaluate(() => document.activeElement?.id) === 'name') return;
      await page.keyboard.press('Tab');
    }
    const id = await page.evaluate(() => document.activeElement?.id);
    assert(id === 'name', `after 10 Tabs the focus is on "${id || 'nothing with an id'}", not #name`);
  });

  await check('keyboard: type name, Tab to password, type it, Enter signs in to the dashboard', async () => {
    await page.keyboard.type(USERS.primary.name);
    await page.keyboard.press('Tab');
    const id = await page.evaluate(() => document.activeElement?.id);
    assert(id === 'password', `Tab from the name field moved focus to "${id}", not #password`);
    await page.keyboard.type(USERS.primary.password);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
    assert(pathOf(page.url()) === '/ui/', `after Enter the browser is on ${page.url()}`);
    const who = await whoami(page);
    assert(who.includes(USERS.primary.name), `#whoami says "${who}"`);
  });
  pages.primary = page;
}

// ---------------------------------------------------------------------------
// 2. Every role signs in, sees its name and role, and only its menus.

for (const key of Object.keys(ROLES)) {
  const user = USERS[key];
  const role = ROLES[key];
  let page = pages[key];

  await check(`${key} (${user.name}) signs in with the form`, async () => {
    page = await signIn(await newContext(), user);
    if (key === 'primary') {
      // keep the keyboard session for later steps too; this one is just the form check
      await page.context().close();
      page = pages.primary;
      await open(page, '/ui/');
    }
    pages[key] = page;
  });
  on(page);

  await check(`${key}: #whoami shows "${user.name} (${role})"`, async () => {
    const who = await whoami(page);
    assert(who.includes(`${user.name} (${role})`), `#whoami says "${who}"`);
  });

  await check(`${key}: main navigation shows exactly the menus a ${role} may open`, async () => {
    const links = await navPaths(page);
    for (const p of COMMON_NAV) assert(links.includes(p), `no link to ${p} (links: ${links.join(' ')})`);
    const wantAdmin = key === 'primary';
    const wantDiscovery = key !== 'subscriber';
    assert(links.includes('/ui/admin') === wantAdmin,
      `Administration link ${wantAdmin ? 'missing' : 'shown'} (links: ${links.join(' ')})`);
    assert(links.includes('/ui/discovery') === wantDiscovery,
      `Discovery link ${wantDiscovery ? 'missing' : 'shown'} (links: ${links.join(' ')})`);
  });

  await check(`${key}: dashboard shows counts, expiry timeline, findings, approvals, alerts; no scripts`, async () => {
    for (const status of ['valid', 'expiring', 'expired']) {
      const count = page.locator(`#counts [data-status="${status}"] .count`);
      assert(await count.count() >= 1, `no #counts [data-status="${status}"] .count`);
      const text = norm(await count.first().innerText());
      assert(/^\d[\d,.\s]*$/.test(text), `count for "${status}" is "${text}", not a number`);
    }
    assert(await page.locator('#expiry-timeline svg').count() >= 1, 'no <svg> in #expiry-timeline');
    for (const id of ['open-findings', 'pending-approvals', 'open-alerts']) {
      assert(await page.locator(`section#${id}`).count() === 1, `no section#${id}`);
    }
    const scripts = await page.locator('script').count();
    assert(scripts === 0, `the page has ${scripts} <script> element(s); the portal has no JavaScript`);
    assert(await page.locator('form#logout input[name="_csrf"]').count() === 1, 'no sign-out form with _csrf');
  });

  await check(`${key}: screenshot dashboard-${key}.png`, () => screenshot(page, `dashboard-${key}.png`));

  if (key !== 'primary') {
    await check(`${key}: /ui/admin is refused with HTTP 403 and an error`, async () => {
      const r = await open(page, '/ui/admin');
      assert(r.status() === 403, `HTTP ${r.status()} (expected 403)`);
      assert(await page.locator('.error').count() >= 1, 'no .error element on the refusal page');
      assert(await page.locator('#users').count() === 0, 'the user table is shown anyway');
    });
  }
  if (key === 'subscriber') {
    await check('subscriber: /ui/discovery is refused with HTTP 403', async () => {
      const r = await open(page, '/ui/discovery');
      assert(r.status() === 403, `HTTP ${r.status()} (expected 403)`);
    });
  }
}

// ---------------------------------------------------------------------------
// 3. The auditor can look at requests but not make or decide them.

await check('auditor: /ui/requests has no new-request form and no Approve buttons', async () => {
  const page = pages.auditor;
  await expectOk(await open(page, '/ui/requests'), '/ui/requests');
  assert(await page.locator('#requests').count() === 1, 'no table#requests');
  assert(await page.locator('#new-request').count() === 0, 'the new-request form is shown to the auditor');
  assert(await page.locator('form.approve').count() === 0, 'an Approve form is shown to the auditor');
  assert(await page.locator('form.reject').count() === 0, 'a Reject form is shown to the auditor');
});

await check('subscriber: POST /ui/requests without a CSRF token is refused (403)', async () => {
  const page = on(pages.subscriber);
  const r = await page.request.post(url('/ui/requests'), {
    form: { identifiers: `csrf-probe.${REQUEST_NAME}`, org_unit: 'web', contact: '' },
    maxRedirects: 0,
  });
  assert(r.status() === 403, `HTTP ${r.status()} (expected 403)`);
});

await check('subscriber: POST /ui/requests with a wrong CSRF token is refused (403)', async () => {
  const page = pages.subscriber;
  const r = await page.request.post(url('/ui/requests'), {
    form: { _csrf: 'not-the-token', identifiers: `csrf-probe.${REQUEST_NAME}`, org_unit: 'web', contact: '' },
    maxRedirects: 0,
  });
  assert(r.status() === 403, `HTTP ${r.status()} (expected 403)`);
});

// ---------------------------------------------------------------------------
// 4. The subscriber asks for a certificate.

let requestId = null;
{
  const page = on(pages.subscriber);
  let before = [];

  await check('subscriber: /ui/requests shows the new-request form', async () => {
    await expectOk(await open(page, '/ui/requests'), '/ui/requests');
    const form = page.locator('form#new-request');
    assert(await form.count() === 1, 'no form#new-request');
    for (const sel of ['textarea[name="identifiers"]', 'select[name="connector"]', 'select[name="org_unit"]',
      'input[name="contact"]', 'input[type="hidden"][name="_csrf"]']) {
      assert(await form.locator(sel).count() === 1, `the form has no ${sel}`);
    }
    before = await requestIds(page);
  });

  await check(`subscriber: submits a request for ${REQUEST_NAME} and sees a confirmation`, async () => {
    const form = page.locator('form#new-request');
    await form.locator('textarea[name="identifiers"]').fill(REQUEST_NAME);
    const connector = await form.locator('select[name="connector"] option').first().evaluate((o) => o.value);
    await form.locator('select[name="connector"]').selectOption(connector);
    // org unit `web`, whether the option's value or its label is the name
    const unit = await form.locator('select[name="org_unit"] option').evaluateAll((opts) =>
      (opts.find((o) => o.value === 'web') || opts.find((o) => o.textContent.trim() === 'web'))?.value);
    assert(unit !== undefined, 'the org unit list has no "web"');
    await form.locator('select[name="org_unit"]').selectOption(unit);
    await form.locator('input[name="contact"]').fill(`${USERS.subscriber.name}@corp.test`);
    const response = await submitAndWait(page, form.getByRole('button', { name: 'Submit request' }));
    assert(response?.status() === 200, `after submitting: HTTP ${response?.status()} on ${page.url()}`);
    assert(pathOf(page.url()) === '/ui/requests', `after submitting the browser is on ${page.url()}`);
    const errors = await page.locator('.error').allInnerTexts();
    assert(errors.length === 0, `error shown: ${errors.map(norm).join(' | ')}`);
    const flash = page.locator('p.flash[role="status"]');
    assert(await flash.count() >= 1, 'no confirmation (p.flash[role="status"])');
  });

  await check(`subscriber: the new request for ${REQUEST_NAME} is listed as pending`, async () => {
    const ids = (await requestIds(page)).filter((id) => !before.includes(id));
    for (const id of ids) {
      const idents = await cellText(requestRow(page, id), 'td.identifiers');
      if (idents && idents.includes(REQUEST_NAME)) { requestId = id; break; }
    }
    assert(requestId, `no new row whose td.identifiers contains ${REQUEST_NAME} (new row ids: ${ids.join(', ') || 'none'})`);
    const state = await cellText(requestRow(page, requestId), 'td.state');
    assert(state?.toLowerCase() === 'pending', `state is "${state}" (expected pending)`);
    assert(await requestRow(page, requestId).locator('form.approve').count() === 0,
      'the subscriber is offered to approve their own request');
  });

  await check('subscriber: screenshot requests-subscriber.png', () => screenshot(page, 'requests-subscriber.png'));
}

// 3 (continued). The server itself refuses an approval forged by the auditor,
// tried on the subscriber's fresh request so a wrong acceptance would show.
await check('auditor: forged POST /ui/requests/<id>/approve with a valid CSRF token is refused (403)', async () => {
  const page = pages.auditor;
  await expectOk(await open(page, '/ui/requests'), '/ui/requests');
  const visible = await requestIds(page);
  const id = visible.includes(requestId) ? requestId : visible[0];
  assert(id, 'no request is visible to the auditor');
  const r = await page.request.post(url(`/ui/requests/${encodeURIComponent(id)}/approve`), {
    form: { _csrf: await csrfToken(page) },
    maxRedirects: 0,
  });
  assert(r.status() === 403, `HTTP ${r.status()} (expected 403)`);
  await open(page, '/ui/requests');
  const state = await cellText(requestRow(page, id), 'td.state');
  if (id === requestId) assert(state?.toLowerCase() === 'pending', `the request is now "${state}"`);
});

// ---------------------------------------------------------------------------
// 5. Another department's admin does not see the request at all.

await check(`other department (${USERS.other_department.name}): the request for ${REQUEST_NAME} is not listed`, async () => {
  const page = pages.other_department;
  await expectOk(await open(page, '/ui/requests'), '/ui/requests');
  assert(await page.locator('#requests').count() === 1, 'no table#requests');
  assert(await requestRow(page, requestId).count() === 0, `row ${requestId} is shown`);
  const idents = await page.locator('#requests td.identifiers').allInnerTexts();
  assert(!idents.some((t) => t.includes(REQUEST_NAME)), `a request for ${REQUEST_NAME} is shown`);
});

// ---------------------------------------------------------------------------
// 6. The department admin approves; the certificate gets issued.

let certPath = null;
{
  const page = on(pages.department);
  const row = () => requestRow(page, requestId);

  await check('department: the pending request is listed with Approve and Reject', async () => {
    await expectOk(await open(page, '/ui/requests'), '/ui/requests');
    assert(await row().count() === 1, `no row ${requestId}`);
    const state = await cellText(row(), 'td.state');
    assert(state?.toLowerCase() === 'pending', `state is "${state}" (expected pending)`);
    assert(await row().locator('form.approve').count() === 1, 'no form.approve in the row');
    assert(await row().locator('form.reject input[name="reason"]').count() === 1, 'no form.reject with a reason field');
  });

  await check('department: Approve marks the request approved', async () => {
    const response = await submitAndWait(page, row().locator('form.approve').getByRole('button', { name: 'Approve' }));
    assert(response?.status() === 200, `after approving: HTTP ${response?.status()} on ${page.url()}`);
    const errors = await page.locator('.error').allInnerTexts();
    assert(errors.length === 0, `error shown: ${errors.map(norm).join(' | ')}`);
    assert(await page.locator('p.flash[role="status"]').count() >= 1, 'no confirmation (p.flash)');
    if (pathOf(page.url()) !== '/ui/requests') await open(page, '/ui/requests');
    const state = await cellText(row(), 'td.state');
    assert(state?.toLowerCase() === 'approved', `state is "${state}" (expected approved)`);
    assert(await row().locator('form.approve').count() === 0, 'the Approve button is still offered');
  });

  await check(`department: the certificate is issued within ${ISSUANCE_TIMEOUT_MS / 1000} s (reloading the page)`, async () => {
    const deadline = Date.now() + ISSUANCE_TIMEOUT_MS;
    let last = '';
    for (;;) {
      const link = row().locator('td.certificate a');
      if (await link.count() > 0) {
        certPath = pathOf(new URL(await link.first().getAttribute('href'), page.url()).href);
        return;
      }
      const state = await cellText(row(), 'td.state');
      last = `state "${state}", certificate cell "${await cellText(row(), 'td.certificate')}"`;
      assert(state?.toLowerCase() !== 'rejected', `the request was rejected (${last})`);
      assert(Date.now() < deadline, `no certificate link after ${ISSUANCE_TIMEOUT_MS / 1000} s (${last})`);
      await sleep(RELOAD_EVERY_MS);
      await page.reload();
    }
  });

  await check(`department: the certificate link opens the detail page for ${REQUEST_NAME}`, async () => {
    const response = await submitAndWait(page, row().locator('td.certificate a').first());
    assert(response?.status() === 200, `HTTP ${response?.status()}`);
    assert(/^\/ui\/certificates\/[^/]+$/.test(pathOf(page.url())), `the link led to ${page.url()}`);
    const heading = norm(await page.locator('h1').first().innerText());
    const fields = norm(await page.locator('dl#fields').innerText());
    assert(heading.includes(REQUEST_NAME) || fields.includes(REQUEST_NAME),
      `neither <h1> ("${heading}") nor #fields mention ${REQUEST_NAME}`);
    for (const id of ['chain', 'installed', 'findings', 'lineage', 'audit']) {
      assert(await page.locator(`#${id}`).count() === 1, `no #${id} section`);
    }
    await expectNoPrivateKey(page);
  });

  await check('department: screenshot certificate-detail.png', () => screenshot(page, 'certificate-detail.png'));

  await check(`department: inventory filter q=${REQUEST_NAME} lists the certificate`, async () => {
    await expectOk(await open(page, '/ui/certificates'), '/ui/certificates');
    const filters = page.locator('form#filters');
    assert(await filters.count() === 1, 'no form#filters');
    for (const sel of ['select[name="status"]', 'select[name="org_unit"]', 'select[name="sort"]']) {
      assert(await filters.locator(sel).count() === 1, `the filter form has no ${sel}`);
    }
    assert(await page.locator('a#export-csv').count() === 1, 'no a#export-csv link');
    await filters.locator('input[name="q"]').fill(REQUEST_NAME);
    const response = await submitAndWait(page, filters.getByRole('button', { name: 'Filter' }));
    assert(response?.status() === 200, `HTTP ${response?.status()}`);
    const q = new URL(page.url()).searchParams.get('q');
    assert(q === REQUEST_NAME, `the filter went to ${page.url()}`);
    const subjects = (await page.locator('#certificates tbody tr a.cert-link').allInnerTexts()).map(norm);
    assert(subjects.some((s) => s.includes(REQUEST_NAME)), `rows: ${subjects.join(' | ') || 'none'}`);
  });

  await check('department: screenshot inventory.png', () => screenshot(page, 'inventory.png'));

  await check('department: /ui/discovery opens and offers no Run buttons (primary admin only)', async () => {
    await expectOk(await open(page, '/ui/discovery'), '/ui/discovery');
    assert(await page.locator('table#jobs').count() === 1, 'no table#jobs');
    assert(await page.locator('form.run-job').count() === 0, 'form.run-job is offered to a department admin');
  });
}

// ---------------------------------------------------------------------------
// 7. The department admin acknowledges the expiry alert.

{
  const page = on(pages.department);
  let alertId = null;

  await check(`department: /ui/alerts lists an open alert for ${ALERT_SUBJECT}`, async () => {
    await expectOk(await open(page, '/ui/alerts'), '/ui/alerts');
    const rows = page.locator('#alerts tr[data-alert-id]');
    const seen = [];
    for (let i = 0; i < await rows.count(); i++) {
      const r = rows.nth(i);
      const subject = await cellText(r, 'td.subject');
      const state = await cellText(r, 'td.state');
      seen.push(`${subject} [${state}]`);
      if (subject?.includes(ALERT_SUBJECT) && state?.toLowerCase() === 'open') {
        alertId = await r.getAttribute('data-alert-id');
        break;
      }
    }
    assert(alertId, `no open alert for ${ALERT_SUBJECT}; rows: ${seen.join(' | ') || 'none'}`);
  });

  await check('department: Acknowledge turns the alert to acknowledged', async () => {
    const row = () => page.locator(`#alerts tr[data-alert-id=${cssString(alertId)}]`);
    const button = row().locator('form.ack').getByRole('button', { name: 'Acknowledge' });
    assert(await button.count() === 1, 'no Acknowledge button on the open alert');
    const response = await submitAndWait(page, button);
    assert(response?.status() === 200, `HTTP ${response?.status()} on ${page.url()}`);
    if (pathOf(page.url()) !== '/ui/alerts') await open(page, '/ui/alerts');
    const state = await cellText(row(), 'td.state');
    assert(state?.toLowerCase() === 'acknowledged', `state is "${state}" (expected acknowledged)`);
    assert(await row().locator('form.ack').count() === 0, 'the Acknowledge button is still offered');
  });

  await check('department: screenshot alerts.png', () => screenshot(page, 'alerts.png'));
}

// ---------------------------------------------------------------------------
// 8. The auditor downloads reports (and cannot act on certificates).

{
  const page = on(pages.auditor);

  await check('auditor: the certificate detail page offers no renew/revoke/replace', async () => {
    await expectOk(await open(page, certPath), certPath);
    const forms = await page.locator('form.action-renew, form.action-revoke, form.action-replace').count();
    assert(forms === 0, `${forms} action form(s) shown to the auditor`);
    await expectNoPrivateKey(page);
  });

  await check('auditor: /ui/reports has a form for every report kind', async () => {
    await expectOk(await open(page, '/ui/reports'), '/ui/reports');
    for (const kind of REPORT_KINDS) {
      const form = page.locator(`form.report[data-report="${kind}"]`);
      assert(await form.count() === 1, `no form.report[data-report="${kind}"]`);
      const formats = await form.locator('select[name="format"] option').evaluateAll((o) => o.map((x) => x.value));
      for (const f of ['csv', 'json', 'html', 'pdf']) assert(formats.includes(f), `${kind}: no format ${f} (has ${formats})`);
    }
    assert(await page.locator('table#schedules').count() === 1, 'no table#schedules');
  });

  /** Picks a format in the "expiring" form, clicks Download, returns the saved file's bytes. */
  async function download(format) {
    const form = page.locator('form.report[data-report="expiring"]');
    await form.locator('select[name="format"]').selectOption(format);
    const [dl] = await Promise.all([
      page.waitForEvent('download'),
      form.getByRole('button', { name: 'Download' }).click(),
    ]);
    const file = path.join(screenshotDir, `report-expiring.${format}`);
    await dl.saveAs(file);
    const failure = await dl.failure();
    assert(!failure, `download failed: ${failure}`);
    return readFileSync(file);
  }

  await check('auditor: "expiring" report downloads as CSV with subject and not_after columns', async () => {
    const text = (await download('csv')).toString('utf8').replace(/^\uFEFF/, '');
    const header = text.split(/\r?\n/)[0];
    assert(header.includes('subject') && header.includes('not_after'), `first line is "${header.slice(0, 200)}"`);
  });

  await check('auditor: "expiring" report downloads as PDF', async () => {
    const bytes = await download('pdf');
    const head = bytes.subarray(0, 5).toString('latin1');
    assert(head === '%PDF-', `file starts with ${JSON.stringify(head)} (${bytes.length} bytes)`);
  });

  await check('auditor: screenshot reports.png', () => screenshot(page, 'reports.png'));
}

// ---------------------------------------------------------------------------
// 9. The primary admin's administration and discovery pages.

{
  const page = on(pages.primary);

  await check('primary: /ui/admin lists all five users, org units, domains, connectors, integrations', async () => {
    await expectOk(await open(page, '/ui/admin'), '/ui/admin');
    const users = norm(await page.locator('table#users').innerText());
    for (const key of Object.keys(ROLES)) {
      assert(users.includes(USERS[key].name), `#users does not list ${USERS[key].name}`);
    }
    for (const sel of ['form#new-user', 'table#org-units', 'table#domains', 'section#connectors', 'section#integrations']) {
      assert(await page.locator(sel).count() === 1, `no ${sel}`);
    }
  });

  await check('primary: screenshot admin.png', () => screenshot(page, 'admin.png'));

  await check('primary: /ui/discovery shows jobs and findings; screenshot discovery.png', async () => {
    await expectOk(await open(page, '/ui/discovery'), '/ui/discovery');
    assert(await page.locator('table#jobs').count() === 1, 'no table#jobs');
    assert(await page.locator('section#findings').count() === 1, 'no section#findings');
    await screenshot(page, 'discovery.png');
  });
}

// ---------------------------------------------------------------------------
// 10. On a phone the dashboard and inventory fit the screen.

{
  const context = await newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  let page;
  await check('phone: department admin signs in on a 390x844 screen', async () => {
    page = await signIn(context, USERS.department);
  });
  on(page);

  await check('phone: the dashboard needs no sideways scrolling', () => expectNoHorizontalOverflow(page));
  await check('phone: screenshot dashboard-phone.png', () => screenshot(page, 'dashboard-phone.png'));

  await check('phone: the inventory needs no sideways scrolling', async () => {
    await expectOk(await open(page, '/ui/certificates'), '/ui/certificates');
    await expectNoHorizontalOverflow(page);
  });
  await check('phone: screenshot inventory-phone.png', () => screenshot(page, 'inventory-phone.png'));
  await context.close();
}

// ---------------------------------------------------------------------------
// 11. Signing out ends the session.

{
  const page = on(pages.primary);
  await check('primary: Sign out leads to the sign-in page', async () => {
    await open(page, '/ui/');
    await submitAndWait(page, page.locator('form#logout').locator('button, input[type="submit"]').first());
    assert(pathOf(page.url()) === '/ui/login', `after signing out the browser is on ${page.url()}`);
  });

  await check('primary: after signing out /ui/ redirects to /ui/login', async () => {
    await open(page, '/ui/');
    assert(pathOf(page.url()) === '/ui/login', `/ui/ showed ${page.url()}`);
    assert(await page.locator('#whoami').count() === 0, 'the page still shows someone signed in');
    const r = await page.request.get(url('/ui/'), { maxRedirects: 0 });
    assert(r.status() === 303, `GET /ui/ answered HTTP ${r.status()} (expected 303)`);
  });
}

finished = true;
await browser.close();
console.log(`portal: ${passed} passed, 0 failed`);
process.exit(0);
