// End-to-end test of the playground page in headless Chromium (Debian's, through
// playwright-core: no browser download). Run by `cargo xtask test`, which builds the
// site, serves it on 127.0.0.1 and sets PLAYGROUND_URL; screenshots go to
// SCREENSHOT_DIR (target/playground-screenshots/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const URL = process.env.PLAYGROUND_URL;
const SHOTS = process.env.SCREENSHOT_DIR || path.resolve('..', 'target', 'playground-screenshots');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
if (!URL) throw new Error('PLAYGROUND_URL is not set: run this through `cargo xtask test` (or `cargo xtask playground --test`)');

let context;
let page;
let profile;
const problems = [];

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'playground-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    viewport: { width: 1360, height: 900 },
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(60_000); // a hang guard for slow machines, not a speed verdict
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
});

after(async () => {
  await context?.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

const byId = (id) => page.getByTestId(id);
const text = async (id) => (await byId(id).textContent()).trim();
const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

async function expectText(id, want, what) {
  const deadline = Date.now() + 60_000;
  let got;
  while (Date.now() < deadline) {
    got = await text(id);
    if (typeof want === 'string' ? got === want : want.test(got)) return got;
    await page.waitForTimeout(50);
  }
  assert.fail(`${what || id}: expected ${want}, got ${JSON.stringify(got)}\nstatus: ${await text('status')}`);
}

async function generate(n) {
  await byId('generate-count').fill(String(n));
  await byId('generate').click();
}

async function load() {
  await page.goto(URL);
  await expectText('status', /^Page loaded/, 'status after load');
}

test('orders: checkpoint, crash, restore, reload, corrupt, bad input', async (t) => {
  await load();
  // A fresh profile: nothing stored yet.
  assert.match(await text('status'), /no checkpoint in localStorage yet/);
  assert.equal(await byId('pipeline-select').inputValue(), 'orders');
  assert.equal(await text('events-processed'), '0');
  assert.equal(await text('state-json'), '{}');
  assert.equal(await byId('checkpoint-item').count(), 0);

  await t.test('generate builds state', async () => {
    await generate(100);
    await expectText('events-processed', '100');
    const state = JSON.parse(await text('state-json'));
    const total = Object.values(state).reduce((n, s) => n + s.count, 0);
    assert.equal(total, 100, 'customer_stats counted every event');
    assert.match(Object.keys(state)[0], /^C00\d$/);
    assert.equal(await text('reference-match'), 'match');
  });

  let atCheckpoint;
  await t.test('checkpoint, generate more, crash, restore', async () => {
    await byId('checkpoint').click();
    await expectText('status', /^Checkpoint #1 saved at offset 100/);
    assert.equal(await byId('checkpoint-item').count(), 1);
    atCheckpoint = await text('state-json');

    await generate(50);
    await expectText('events-processed', '150');
    assert.notEqual(await text('state-json'), atCheckpoint);

    await byId('crash').click();
    await expectText('status', /^Crashed at offset 150/);
    assert.equal(await text('state-json'), '{}', 'state visibly empty');
    assert.equal(await text('events-processed'), '0');
    assert.ok(await byId('generate').isDisabled(), 'nothing to run after a crash');
    await shot('1-crashed');

    await byId('restore').click();
    await expectText('status', /^Restored checkpoint #1 .*offset 100/);
    assert.match(await text('status'), /Events 100–149 will be read again/);
    assert.equal(await text('events-processed'), '100');
    assert.equal(await text('state-json'), atCheckpoint, 'state is back');
    assert.equal(await text('reference-match'), 'match');

    await generate(50);
    await expectText('events-processed', '150');
    assert.equal(await text('reference-match'), 'match', 'replayed events give the never-crashed state');
  });

  let beforeReload;
  await t.test('reloading the page is a real crash: the checkpoint comes back', async () => {
    await byId('checkpoint').click();
    await expectText('status', /^Checkpoint #2 saved at offset 150/);
    beforeReload = await text('state-json');
    await page.reload();
    await expectText('status', /^Page loaded: Restored checkpoint #2 .*offset 150/);
    assert.equal(await text('events-processed'), '150');
    assert.equal(await text('state-json'), beforeReload);
    assert.equal(await text('reference-match'), 'match');
    assert.equal(await byId('checkpoint-item').count(), 2);
  });

  await t.test('a corrupt latest checkpoint is detected and recovery falls back', async () => {
    await byId('corrupt-latest').click();
    await expectText('status', /^Corrupted checkpoint_.*-000002\.json: changed one digit/);
    await byId('checkpoint-list').locator('[data-testid=checkpoint-item]').first().click();
    await expectText('checkpoint-json', /"customer_stats"/);
    await byId('restore').click();
    const status = await expectText('status', /checksum mismatch/);
    assert.match(status, /^Dropped the in-memory pipeline and restored checkpoint #1 /);
    assert.match(status, /fell back to checkpoint_.*-000001\.json/);
    assert.equal(await text('events-processed'), '100');
    assert.equal(await text('state-json'), atCheckpoint);
    assert.equal(await text('reference-match'), 'match');
    await shot('2-fallback');
  });

  await t.test('a malformed event shows the parse error naming the field and changes nothing', async () => {
    const state = await text('state-json');
    await byId('send-malformed').click();
    await expectText('status', /^Rejected malformed event .*amount: invalid type: string "12,50", expected f64/);
    assert.equal(await text('state-json'), state);
    assert.equal(await text('events-processed'), '100');
    assert.match(await text('dead-letters'), /amount: invalid type/);
    await byId('send-malformed').click();
    await expectText('status', /missing field `ts`/);
    assert.equal(await text('state-json'), state);
  });

  await t.test('the manual form names the bad field; a good event is processed', async () => {
    const state = await text('state-json');
    await byId('manual-amount').fill('12,5');
    await byId('send-manual').click();
    await expectText('form-error', /^amount: `12,5` is not a number \(use a dot: 12\.5\)/);
    assert.equal(await text('state-json'), state);
    assert.equal(await text('events-processed'), '100');
    await byId('manual-amount').fill('12.5');
    await byId('manual-customer').fill('C777');
    await byId('manual-ts').fill('soon');
    await byId('send-manual').click();
    await expectText('form-error', /^ts: `soon` is not a whole number of milliseconds/);
    await byId('manual-ts').fill('');
    await byId('send-manual').click();
    await expectText('events-processed', '101');
    assert.equal(await text('form-error'), '');
    assert.deepEqual(JSON.parse(await text('state-json')).C777, { count: 1, amount: 12.5 });
  });

  await t.test('a late event goes to the late output', async () => {
    await byId('send-late').click();
    await expectText('status', /went to the late output/);
    assert.match(await text('late-output'), /"stage":"per_5min"/);
    assert.equal(await text('reference-match'), 'match');
    await shot('3-orders');
  });

  await t.test('clear storage', async () => {
    await byId('clear-storage').click();
    await expectText('status', /^Deleted 2 checkpoints/);
    assert.equal(await byId('checkpoint-item').count(), 0);
  });
});

// The newest result row (the list shows the newest first, after its window's times).
async function lastRow() {
  const t = await byId('outputs').locator('li').first().textContent();
  return JSON.parse(t.slice(t.indexOf('{')));
}

test('SQL editor: a typed query runs, an error is marked at its word, crash and restore', async (t) => {
  const query = "SELECT customer, COUNT(*) AS n, SUM(amount) AS total\nFROM orders\nGROUP BY customer, TUMBLE(ts, INTERVAL '1' MINUTE)";
  await byId('pipeline-select').selectOption('sql');
  assert.ok(await byId('sql-card').isVisible(), 'the editor shows for the SQL pipeline');

  await t.test('typing a query and running it shows its rows', async () => {
    await byId('sql-editor').fill(query);
    await byId('sql-editor').press('Control+Enter');
    await expectText('status', /^Running the query from offset 0: stage `query`, rows \(customer, window_start, window_end, n, total\)/);
    assert.equal(await text('sql-error'), '');
    await generate(200);
    await expectText('events-processed', '200');
    const row = await lastRow();
    assert.deepEqual(Object.keys(row), ['customer', 'window_start', 'window_end', 'n', 'total']);
    assert.equal(row.window_end - row.window_start, 60_000);
    assert.ok(row.n >= 1 && row.total > 0, JSON.stringify(row));
    const header = await tableHeader('query');
    assert.deepEqual(header.slice(-2), ['n', 'total']);
    assert.ok((await tableRows('query')).length > 0, 'open windows in the state table');
    assert.equal(await text('reference-match'), 'match');
  });

  await t.test('errors show their position and mark the word; the running query goes on', async () => {
    await byId('sql-editor').fill('SELECT customer, SUM(amout) AS total\nFROM orders GROUP BY customer');
    await byId('sql-run').click();
    await expectText('sql-error', /^line 1, column 22: unknown column `amout` in `orders`; did you mean `amount`\?/);
    assert.equal(await text('sql-error-mark'), 'amout');
    await expectText('status', /^Query not run: unknown column `amout`.*The previous query keeps running/);
    assert.equal(await text('events-processed'), '200');
    await shot('7-sql-error');
    await byId('sql-editor').fill('SELECT customer, COUNT(*) AS n,\n  amount\nFROM orders GROUP BY customer');
    await byId('sql-run').click();
    await expectText('sql-error', /^line 2, column 3: `amount` is neither grouped nor aggregated/);
    assert.equal(await text('sql-error-mark'), 'amount');
    await byId('sql-editor').fill('SELECT customer COUNT(*)\nFROM orders GROUP BY customer');
    await byId('sql-run').click();
    await expectText('sql-error', /^line 1, column 22: SQL syntax error: Expected: end of statement, found: \(/);
    assert.equal(await text('sql-error-mark'), '(');
  });

  await t.test('crash and restore of the typed query equal the reference run; a reload keeps the query', async () => {
    await byId('sql-editor').fill(query);
    await byId('sql-run').click();
    await expectText('status', /^Running the query from offset 0/);
    assert.equal(await byId('sql-error-mark').count(), 0);
    await generate(120);
    await expectText('events-processed', '120');
    await byId('checkpoint').click();
    await expectText('status', /^Checkpoint #1 saved at offset 120/);
    const atCheckpoint = await text('state-json');
    await generate(40);
    await expectText('events-processed', '160');
    await byId('crash').click();
    await expectText('state-json', '{}');
    await byId('restore').click();
    await expectText('status', /^Restored checkpoint #1 .*offset 120/);
    assert.equal(await text('state-json'), atCheckpoint);
    assert.equal(await text('reference-match'), 'match');
    // The picture for the README: the editor and its state, back after a crash.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(SHOTS, 'readme.png') });
    await generate(40);
    await expectText('events-processed', '160');
    assert.equal(await text('reference-match'), 'match', 'replayed events give the never-crashed state');
    assert.match(await page.locator('#reference-detail').textContent(), /output: match/);
    await page.reload();
    await expectText('status', /^Page loaded: Restored checkpoint #1 .*offset 120/);
    assert.equal(await byId('sql-editor').inputValue(), query);
    assert.equal(await text('state-json'), atCheckpoint);
    assert.equal(await text('reference-match'), 'match');
  });
});

// The rows of a stage's state table, as the page shows them.
async function tableRows(stage) {
  return page.locator(`[data-testid=stage][data-stage="${stage}"] tbody tr`).evaluateAll((trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent)));
}

async function tableHeader(stage) {
  return page.locator(`[data-testid=stage][data-stage="${stage}"] thead th`).allTextContents();
}

const edges = () => page.getByTestId('diagram-edge').evaluateAll((es) => es.map((e) => `${e.dataset.from}->${e.dataset.to}`));

test('every other pipeline also survives a crash', async () => {
  for (const name of ['sliding', 'sessions', 'global', 'join']) {
    await byId('pipeline-select').selectOption(name);
    await expectText('events-processed', '0');
    await generate(120);
    await expectText('events-processed', '120');
    await byId('checkpoint').click();
    await expectText('status', /^Checkpoint #1 saved at offset 120/);
    const state = await text('state-json');
    assert.ok(state.length > 2, `${name}: state built up`);
    const tables = await byId('stages').innerText();
    await generate(30);
    await byId('crash').click();
    await expectText('state-json', '{}');
    await byId('restore').click();
    await expectText('events-processed', '120');
    assert.equal(await text('state-json'), state, name);
    assert.equal(await byId('stages').innerText(), tables, `${name}: the state tables are back`);
    assert.equal(await text('reference-match'), 'match', name);
    assert.ok(Number(await page.locator('#out-count').textContent()) > 0, `${name}: results emitted`);
    await shot(`4-${name}`);
  }
});

test('the join: two inputs in the diagram, buffered events of both in the state', async () => {
  await byId('pipeline-select').selectOption('join');
  await expectText('events-processed', '120');
  const sources = await page.locator('[data-testid=diagram-node][data-kind=source]').evaluateAll((ns) => ns.map((n) => n.dataset.id));
  assert.deepEqual(sources, ['sales', 'payments']);
  assert.deepEqual(await edges(), ['sales->paid', 'payments->paid', 'paid->sink:paid']);
  assert.match(await page.locator('[data-testid=diagram-node][data-id=paid]').textContent(), /join payments on sale_id/);
  assert.deepEqual(await tableHeader('paid'), ['window (UTC)', 'sale_id', 'input', 'event']);
  const rows = await tableRows('paid');
  const state = JSON.parse(await text('state-json'));
  let buffered = 0;
  for (const keyed of Object.values(state.windows)) {
    for (const sides of Object.values(keyed)) buffered += sides.left.length + sides.right.length;
  }
  assert.equal(rows.length, buffered, 'one row per buffered event');
  for (const input of ['sales', 'payments']) assert.ok(rows.some((r) => r[2] === input), `buffered ${input}: ${rows}`);
  for (const [, id, input, event] of rows) {
    const e = JSON.parse(event);
    assert.equal(String(input === 'sales' ? e.id : e.sale_id), id, 'each event under its key');
  }
  // A sale typed by hand is buffered under its offset.
  await byId('manual-customer').fill('C900');
  await byId('manual-amount').fill('4.25');
  await byId('send-manual').click();
  await expectText('events-processed', '121');
  const sent = (await tableRows('paid')).filter((r) => r[1] === '120');
  assert.equal(sent.length, 1, 'the sale at offset 120');
  assert.equal(JSON.parse(sent[0][3]).customer, 'C900');
  await byId('send-late').click();
  await expectText('status', /went to the late output/);
  assert.match(await text('late-output'), /"stage":"paid"/);
  assert.equal(await text('reference-match'), 'match');
  await shot('5-join');
});

test('a window over all events: one row per window, its columns as columns', async () => {
  await byId('pipeline-select').selectOption('global');
  await expectText('events-processed', '120');
  assert.match(await page.locator('[data-testid=diagram-node][data-id=last_minute]').textContent(), /over all events/);
  assert.deepEqual(await edges(), ['orders->last_minute', 'last_minute->sink:last_minute']);
  assert.deepEqual(await tableHeader('last_minute'), ['window (UTC)', 'orders', 'revenue', 'biggest']);
  const rows = await tableRows('last_minute');
  const windows = JSON.parse(await text('state-json')).windows;
  assert.equal(rows.length, Object.keys(windows).length, 'one row per open window');
  assert.ok(rows.length >= 3, 'sliding windows overlap');
  const counts = Object.values(windows).map((acc) => String(acc.orders));
  assert.deepEqual(rows.map((r) => r[1]), counts, 'the accumulator\'s count, not a key');
  assert.match(await page.locator('[data-stage=last_minute] .what').first().textContent(), /over all events: one accumulator per window/);
  await shot('6-global');
});

test('upgrade: version 2 restores version 1\'s checkpoint with its migration; a resized window is refused', async () => {
  await byId('pipeline-select').selectOption('upgrade');
  await expectText('events-processed', '0');
  await generate(60);
  await expectText('events-processed', '60');
  await byId('checkpoint').click();
  await expectText('status', /^Checkpoint #1 saved at offset 60/);
  const before = JSON.parse(await text('state-json'));
  await byId('deploy-3').click();
  await expectText('status', /^Deployed version 3\. Nothing was loaded: .*stage `per_5min`.*a window's size cannot be migrated/);
  await expectText('state-json', '{}');
  await byId('deploy-2').click();
  await expectText('status', /^Deployed version 2\. Restored checkpoint #1 .*Upgrade: stage `customer_stats` is migrated from the state of `customer_stats` \(added `max_amount` from their default\)/);
  assert.equal(await byId('deploy-2').getAttribute('aria-pressed'), 'true');
  assert.match(await page.locator('#dsl').textContent(), /#\[migrate\(added\(max_amount\)\)\]/);
  const migrated = JSON.parse(await text('state-json'));
  assert.equal(migrated.C001.count, before.C001.count, 'the counts restore');
  await byId('manual-customer').fill('C001');
  await byId('manual-amount').fill('12.5');
  await byId('manual-ts').fill('');
  await byId('send-manual').click();
  await expectText('events-processed', '61');
  const after = JSON.parse(await text('state-json'));
  assert.equal(after.C001.count, before.C001.count + 1, 'C001: n -> n + 1');
  assert.equal(after.C001.max_amount, 12.5, 'the new column started from its default');
  assert.equal(await text('reference-match'), 'match');
  assert.match(await text('upgrade-note'), /migrated from version 1's checkpoint at offset 60/);
  await shot('8-upgrade');
});

test('automatic checkpoints, then the overview screenshot', async () => {
  await byId('pipeline-select').selectOption('orders');
  await byId('auto-every').fill('25');
  await page.locator('#auto-on').check();
  await expectText('status', /every 25 events: on/);
  await generate(100);
  await expectText('status', /4 automatic checkpoints/);
  assert.equal(await byId('checkpoint-item').count(), 4);
  await byId('checkpoint-list').locator('[data-testid=checkpoint-item]').first().click();
  await expectText('checkpoint-json', /"format": "simplestream-checkpoint"/);
  await shot('overview');
  assert.deepEqual(problems, [], 'no errors in the page');
});
