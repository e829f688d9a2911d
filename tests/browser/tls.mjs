// The portal over HTTPS in a real browser, where Chromium speaks HTTP/2:
// a page load, a sign-in form and a sign-out form, each a POST the portal
// must accept as same-origin (HTTP/2 names the host in `:authority`, not in a
// Host header).
//
// Run:   cd tests/browser && npm ci && node tls.mjs
// Input (environment):
//   CERTKEEPER_URL    base URL of the daemon over TLS, e.g. https://127.0.0.1:8443
//   CERTKEEPER_USER   JSON {"name","password"} of an account
//   CHROMIUM          optional, browser binary (default /usr/bin/chromium)
// The daemon's certificate is the test's own, so certificate errors are
// ignored; everything else is as a user's browser does it.
//
// Output: `ok - <what>` per check; `not ok - <what>: <details>` and exit
// status 1 at the first failure.

import { chromium } from 'playwright-core';

const TIMEOUT_MS = 15_000;
const base = process.env.CERTKEEPER_URL.replace(/\/$/, '');
const user = JSON.parse(process.env.CERTKEEPER_USER);

let browser;
let page;

async function check(what, fn) {
  try {
    await fn();
  } catch (err) {
    console.log(`not ok - ${what}: ${String(err && err.message ? err.message : err).split('\n')[0]}`);
    if (page) {
      console.log(`# page: ${page.url()}`);
      try {
        const text = await page.evaluate(() => (document.body ? document.body.innerText : ''));
        for (const line of String(text).slice(0, 1500).split('\n')) console.log(`#   ${line}`);
      } catch { /* the page is gone */ }
    }
    await browser?.close().catch(() => {});
    process.exit(1);
  }
  console.log(`ok - ${what}`);
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const protocol = () => page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
const pathOf = (url) => new URL(url).pathname;

setTimeout(() => {
  console.log('not ok - finished within 120 s');
  process.exit(1);
}, 120_000).unref();

browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ ignoreHTTPSErrors: true });
context.setDefaultTimeout(TIMEOUT_MS);
page = await context.newPage();

await check('the sign-in page loads over HTTPS with HTTP/2', async () => {
  const response = await page.goto(`${base}/ui/login`);
  assert(response.status() === 200, `HTTP ${response.status()}`);
  const p = await protocol();
  assert(p === 'h2', `negotiated ${p}, not h2`);
});

await check('signing in (a form POST over HTTP/2) reaches the dashboard', async () => {
  await page.locator('#login input[name="name"]').fill(user.name);
  await page.locator('#login input[name="password"]').fill(user.password);
  await Promise.all([page.waitForNavigation(), page.locator('#login button[type="submit"]').click()]);
  assert(pathOf(page.url()) === '/ui/', `on ${page.url()}, not /ui/`);
  const who = await page.locator('#whoami').innerText();
  assert(who.includes(user.name), `#whoami says ${who}`);
  assert((await protocol()) === 'h2', 'the dashboard came over HTTP/2');
});

await check('the session cookie is Secure over TLS', async () => {
  const cookies = await context.cookies(base);
  const session = cookies.find((c) => c.name === 'ck_session');
  assert(session && session.secure && session.httpOnly, JSON.stringify(cookies));
});

await check('signing out (a second form POST) leads to the sign-in page', async () => {
  const form = page.locator('form#logout');
  await Promise.all([page.waitForNavigation(), form.locator('button, input[type="submit"]').first().click()]);
  assert(pathOf(page.url()) === '/ui/login', `on ${page.url()}`);
  const response = await page.goto(`${base}/ui/certificates`);
  assert(pathOf(page.url()) === '/ui/login', `after signing out /ui/certificates led to ${page.url()} (HTTP ${response.status()})`);
});

await browser.close();
console.log('tls: all passed');
