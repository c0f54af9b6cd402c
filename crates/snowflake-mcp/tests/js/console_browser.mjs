// Drives the operator's console in Debian's headless Chromium (through playwright-core) the way
// an on-call operator would, and prints what each page showed as one JSON line for the Rust
// test (tests/console_browser.rs) to check against /metrics and the API.
//
// Environment: BASE (the server's URL), TOKEN (the admin token), OUT (a folder for the
// screenshots), CHROMIUM (the browser), NODE_PATH (the test tooling's node_modules), FLOODER
// (the client to pause), RUNAWAY (text of the statement to cancel).

import { createRequire } from 'node:module';
import path from 'node:path';
import { mkdirSync } from 'node:fs';

const require = createRequire(path.join(process.env.NODE_PATH, 'noop.js'));
const { chromium } = require('playwright-core');

const { BASE, TOKEN, OUT, CHROMIUM, FLOODER, RUNAWAY } = process.env;
mkdirSync(OUT, { recursive: true });

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // As root in a container, with the machine's network closed: no sandbox, and none of
  // Chromium's own background connections.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const seen = { foreign_requests: [] };
const watch = (page) => page.on('request', (r) => {
  if (!r.url().startsWith(BASE)) seen.foreign_requests.push(r.url());
});

// The text of each table row on the page, cell by cell (header rows have no <td>).
const rows = (page, selector = 'table') => page.$$eval(`${selector} tr`, (trs) => trs
  .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText.trim()))
  .filter((cells) => cells.length > 0));
const tables = (page) => page.$$eval('table', (ts) => ts.map((t) => [...t.querySelectorAll('tr')]
  .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText.trim()))
  .filter((cells) => cells.length > 0)));
const shot = (page, name) => page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });

// 1. A stranger sees the sign-in form and nothing else.
const stranger = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const away = await stranger.newPage();
watch(away);
let response = await away.goto(`${BASE}/console/clients`);
seen.stranger = { status: response.status(), text: await away.innerText('body') };
response = await away.goto(`${BASE}/console/api/overview`);
seen.stranger.api_status = response.status();
await away.goto(`${BASE}/console`);
await away.fill('input[name=token]', 'not-the-token');
await Promise.all([away.waitForLoadState(), away.click('button')]);
seen.stranger.wrong_token = await away.innerText('body');
await shot(away, 'sign-in');

// 2. The operator signs in and reads every page.
const operator = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await operator.newPage();
watch(page);
await page.goto(`${BASE}/console`);
await page.fill('input[name=token]', TOKEN);
await Promise.all([page.waitForURL(`${BASE}/console`), page.click('button')]);
seen.overview = {
  title: await page.innerText('h1'),
  cards: Object.fromEntries(await page.$$eval('.card', (cards) => cards.map((c) => [
    c.children[0].innerText.trim(), c.children[1].innerText.trim()]))),
  charts: await page.$$eval('figure.chart svg polyline', (ls) => ls.length),
  tables: await tables(page),
};
await shot(page, 'overview');

await page.goto(`${BASE}/console/clients`);
seen.clients = await rows(page);
await shot(page, 'clients');

await page.goto(`${BASE}/console/queries`);
seen.queries = await tables(page);
await shot(page, 'queries');
await page.fill('input[name=client]', 'capped');
await Promise.all([page.waitForURL(/client=capped/), page.click('form.f button')]);
seen.capped_queries = await tables(page);
await shot(page, 'queries-capped');

await page.goto(`${BASE}/console/sessions`);
seen.sessions = await rows(page, 'table:last-of-type');
seen.sessions_kept = await rows(page, 'table:first-of-type');
await shot(page, 'sessions');

await page.goto(`${BASE}/console/warehouses`);
seen.warehouses = await rows(page);
await shot(page, 'warehouses');

// 3. Actions: pause the flooding client, cancel the runaway statement.
await page.goto(`${BASE}/console/clients`);
const flooderRow = page.locator('tr', { has: page.locator('td', { hasText: new RegExp(`^${FLOODER}$`) }) });
await flooderRow.locator('input[name=reason]').fill('flooding the warehouse');
await Promise.all([page.waitForURL(/note=/), flooderRow.locator('button', { hasText: 'Pause' }).click()]);
seen.pause_note = await page.innerText('.note');
seen.clients_after_pause = await rows(page);
await shot(page, 'clients-paused');

await page.goto(`${BASE}/console/queries`);
const runaway = page.locator('tr', { has: page.locator('code', { hasText: RUNAWAY }) }).first();
await Promise.all([page.waitForURL(/note=/), runaway.locator('button', { hasText: 'Cancel' }).click()]);
seen.cancel_note = await page.innerText('.note');
await shot(page, 'queries-cancelled');

// 4. On a phone: the overview fits the screen's width.
const phone = await browser.newContext({
  viewport: { width: 390, height: 844 }, storageState: await operator.storageState(),
});
const small = await phone.newPage();
watch(small);
await small.goto(`${BASE}/console`);
seen.phone = {
  width: await small.evaluate(() => document.documentElement.scrollWidth),
  title: await small.innerText('h1'),
};
await shot(small, 'overview-phone');

// 5. Signing out ends the console session.
await page.goto(`${BASE}/console`);
await Promise.all([page.waitForLoadState(), page.click('nav button')]);
response = await page.goto(`${BASE}/console/clients`);
seen.after_sign_out = response.status();

await browser.close();
console.log(JSON.stringify(seen));
