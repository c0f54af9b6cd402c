// A test host for snowflake-mcp's result viewer (an MCP App), written from the ext-apps
// specification (specification/2026-01-26/apps.mdx): it reads the viewer with resources/read,
// loads it in a sandboxed iframe on an origin of its own under the CSP the spec prescribes for
// an app that declares no domains, answers ui/initialize, sends the call's tool-input and
// tool-result, and forwards the viewer's tools/call to the server. The MCP side is the
// official TypeScript SDK client; the browser is Debian's headless Chromium (playwright-core).
// Prints what it saw as one JSON line for tests/result_viewer.rs.
//
// Environment: MCP_URL, CHROMIUM, OUT (screenshots), NODE_PATH.

import { createRequire } from 'node:module';
import path from 'node:path';
import { mkdirSync } from 'node:fs';

const require = createRequire(path.join(process.env.NODE_PATH, 'noop.js'));
const { chromium } = require('playwright-core');
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');

const { MCP_URL, CHROMIUM, OUT } = process.env;
mkdirSync(OUT, { recursive: true });
const seen = { tool_calls: [], foreign_requests: [] };

// --- The MCP side ------------------------------------------------------------------------------
const client = new Client({ name: 'apps-test-host', version: '1' }, {
  capabilities: { extensions: { 'io.modelcontextprotocol/ui': { mimeTypes: ['text/html;profile=mcp-app'] } } },
});
await client.connect(new StreamableHTTPClientTransport(new URL(MCP_URL)));
const tools = (await client.listTools()).tools;
const runQuery = tools.find((t) => t.name === 'run_query');
const uri = runQuery._meta?.ui?.resourceUri;
seen.linked = tools.filter((t) => t._meta?.ui?.resourceUri === uri).map((t) => t.name).sort();
seen.resource_uri = uri;
seen.listed = (await client.listResources()).resources.map((r) => ({ uri: r.uri, mimeType: r.mimeType }));
const read = await client.readResource({ uri });
const app = read.contents[0];
seen.app = { mimeType: app.mimeType, bytes: app.text.length, csp: app._meta?.ui?.csp };

// --- The browser side --------------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
// The spec's CSP for an app that declares no domains (spec "Security Implications").
const CSP = "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self' data:; connect-src 'none'";
const HOST_PAGE = `<!doctype html><html><body style="margin:0;padding:12px;background:#888">
<iframe id="app" sandbox="allow-scripts" style="width:860px;height:200px;border:0;background:white"></iframe>
<script>
const frame = document.getElementById('app');
window.__log = [];
const post = (m) => frame.contentWindow.postMessage(Object.assign({ jsonrpc: '2.0' }, m), '*');
window.addEventListener('message', async (e) => {
  if (e.source !== frame.contentWindow) return;
  const m = e.data;
  window.__log.push(m.method || 'response');
  if (m.method === 'ui/initialize') {
    post({ id: m.id, result: { protocolVersion: '2026-01-26', hostInfo: { name: 'test-host', version: '1' },
      hostCapabilities: { serverTools: {} }, hostContext: { theme: window.__call.theme, displayMode: 'inline' } } });
  } else if (m.method === 'ui/notifications/initialized') {
    post({ method: 'ui/notifications/tool-input', params: { arguments: window.__call.args } });
    post({ method: 'ui/notifications/tool-result', params: window.__call.result });
  } else if (m.method === 'tools/call') {
    try { post({ id: m.id, result: await window.callTool(m.params.name, m.params.arguments) }); }
    catch (err) { post({ id: m.id, error: { code: -32603, message: String(err) } }); }
  } else if (m.method === 'ui/notifications/size-changed' && m.params.height) {
    frame.style.height = Math.min(m.params.height, 900) + 'px';
  }
});
frame.src = 'https://viewer.sandbox.test/app.html';
</script></body></html>`;

async function host(name, args, theme) {
  const result = await client.callTool({ name: 'run_query', arguments: args });
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith('https://host.test/') && !u.startsWith('https://viewer.sandbox.test/')) seen.foreign_requests.push(u);
  });
  await context.route('https://host.test/**', (route) => route.fulfill({ contentType: 'text/html', body: HOST_PAGE }));
  await context.route('https://viewer.sandbox.test/**', (route) => route.fulfill({
    contentType: 'text/html', body: app.text, headers: { 'content-security-policy': CSP },
  }));
  await page.exposeFunction('callTool', async (tool, toolArgs) => {
    seen.tool_calls.push(tool);
    return client.callTool({ name: tool, arguments: toolArgs });
  });
  await page.addInitScript((call) => { window.__call = call; }, { args, result, theme });
  await page.goto('https://host.test/');
  const frame = page.frameLocator('#app');
  await frame.locator('#table tbody tr').first().waitFor();
  const viewer = page.frames().find((f) => f.url().startsWith('https://viewer.sandbox.test/'));
  return { page, frame, viewer, result, context };
}

const state = (viewer) => viewer.evaluate(() => ({
  chart: document.getElementById('chart').dataset.chart,
  auto: document.getElementById('chart').dataset.auto,
  series: Number(document.getElementById('chart').dataset.series || 0),
  counts: document.getElementById('counts').textContent,
  sql: document.getElementById('sql').textContent,
  queryId: document.getElementById('query-id').textContent,
  headers: [...document.querySelectorAll('#table th')].map((th) => th.firstChild.textContent),
  types: [...document.querySelectorAll('#table th small')].map((s) => s.textContent),
  firstColumn: [...document.querySelectorAll('#table tbody tr')].map((tr) => tr.children[0].textContent),
  rows: document.querySelectorAll('#table tbody tr').length,
  numericRight: [...document.querySelectorAll('#table tbody tr:first-child td')].map((td) => getComputedStyle(td).textAlign),
  nulls: document.querySelectorAll('#table td.null').length,
  theme: document.documentElement.dataset.theme || 'light',
  background: getComputedStyle(document.body).backgroundColor,
}));

// 1. Monthly revenue by region: a line per region, a sortable table, the SQL and query id.
const MONTHLY = `SELECT DATE_TRUNC('month', T.ORDER_DATE) AS MONTH, R.NAME AS REGION, SUM(T.TOTAL) AS REVENUE
FROM ORDER_TOTALS T JOIN CUSTOMERS C ON C.CUSTOMER_ID = T.CUSTOMER_ID JOIN REGIONS R ON R.REGION_ID = C.REGION_ID
GROUP BY 1, 2 ORDER BY 1, 2`;
let h = await host('monthly', { sql: MONTHLY }, 'light');
seen.monthly = await state(h.viewer);
seen.monthly.structured_rows = h.result.structuredContent.rows.length;
await h.page.screenshot({ path: path.join(OUT, 'monthly-revenue-line.png'), fullPage: true });
// Sort by revenue: descending after two clicks.
await h.frame.locator('#table th', { hasText: 'REVENUE' }).click();
await h.frame.locator('#table th', { hasText: 'REVENUE' }).click();
seen.monthly.sorted = await h.viewer.evaluate(() => [...document.querySelectorAll('#table tbody tr')].map((tr) => Number(tr.children[2].textContent)));
seen.monthly.aria = await h.frame.locator('#table th', { hasText: 'REVENUE' }).getAttribute('aria-sort');
// The person switches the chart to bars.
await h.frame.locator('#chart-kind').selectOption('bar');
seen.monthly.switched = (await state(h.viewer)).chart;
// The sandbox: no network, no reach into the host page.
seen.sandbox = await h.viewer.evaluate(async () => {
  const out = {};
  try { await fetch('https://example.com/x'); out.fetch = 'allowed'; } catch (e) { out.fetch = 'blocked'; }
  try { out.parent = typeof window.parent.document; } catch (e) { out.parent = 'blocked'; }
  return out;
});
// Copy as CSV: no clipboard in the sandbox, so the text is offered to copy by hand.
await h.frame.locator('#copy-csv').click();
seen.copied = await h.viewer.evaluate(() => window.__lastCopy);
await h.context.close();

// 2. Revenue by region, in the host's dark theme: bars.
h = await host('regions', { sql: 'SELECT R.NAME AS REGION, SUM(T.TOTAL) AS REVENUE FROM ORDER_TOTALS T JOIN CUSTOMERS C ON C.CUSTOMER_ID = T.CUSTOMER_ID JOIN REGIONS R ON R.REGION_ID = C.REGION_ID GROUP BY 1 ORDER BY 2 DESC' }, 'dark');
seen.regions = await state(h.viewer);
await h.page.screenshot({ path: path.join(OUT, 'revenue-by-region-bar-dark.png'), fullPage: true });
await h.context.close();

// 3. A long result paged through the server: 25 rows a page, "load more" twice.
h = await host('orders', { sql: 'SELECT ORDER_ID, CUSTOMER_ID, ORDER_DATE, STATUS, NULL AS NOTE FROM ORDERS ORDER BY ORDER_ID', max_rows: 25 }, 'light');
seen.paging = { before: await state(h.viewer) };
for (let i = 0; i < 2; i++) {
  const rowsBefore = (await state(h.viewer)).rows;
  await h.frame.locator('#more').click();
  await h.viewer.waitForFunction((n) => document.querySelectorAll('#table tbody tr').length > n, rowsBefore);
}
seen.paging.after = await state(h.viewer);
seen.paging.more_visible = await h.frame.locator('#more').isVisible();
await h.page.screenshot({ path: path.join(OUT, 'orders-paged.png'), fullPage: true });
await h.context.close();

await browser.close();
await client.close();
console.log(JSON.stringify(seen));
