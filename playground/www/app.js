// The playground page: draws what the WASM (`Playground`, in Rust) says, and forwards
// button presses to it. All the logic (pipelines, checkpoints, recovery) is Rust.
import init, { Playground } from './pkg/simplestream_playground.js';

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
};

let pg;
let view;
let shownCheckpoint = null;

function setStatus(level, text) {
  const s = $('status');
  s.className = `status ${level}`;
  s.textContent = text;
}

async function main() {
  try {
    await init();
    pg = new Playground();
  } catch (e) {
    setStatus('error', `The playground could not start: ${e && e.message ? e.message : e}`);
    throw e;
  }
  const menu = JSON.parse(pg.menu());
  const select = $('pipeline-select');
  for (const p of menu.pipelines) select.append(el('option', { value: p.instance, text: p.title }));
  const wanted = location.hash.slice(1);
  if (wanted && pg.select(wanted)) select.value = wanted;
  select.addEventListener('change', () => {
    pg.select(select.value);
    history.replaceState(null, '', `#${select.value}`);
    shownCheckpoint = null;
    render();
  });

  const act = (f) => () => { f(); render(); };
  $('generate').addEventListener('click', act(() => pg.generate(Number($('generate-count').value))));
  $('checkpoint').addEventListener('click', act(() => pg.checkpoint()));
  $('crash').addEventListener('click', act(() => pg.crash()));
  $('restore').addEventListener('click', act(() => pg.restore()));
  $('corrupt-latest').addEventListener('click', act(() => pg.corrupt_latest()));
  $('clear-storage').addEventListener('click', act(() => { pg.clear_storage(); shownCheckpoint = null; }));
  $('reload').addEventListener('click', () => location.reload());
  $('send-late').addEventListener('click', act(() => pg.send_late()));
  $('send-malformed').addEventListener('click', act(() => pg.send_malformed()));
  $('manual-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    pg.send_manual($('m-customer').value, $('m-amount').value, $('m-ts').value);
    render();
  });
  const auto = act(() => pg.set_auto($('auto-on').checked, Number($('auto-every').value)));
  $('auto-on').addEventListener('change', auto);
  $('auto-every').addEventListener('change', () => { if ($('auto-on').checked) auto(); });
  $('codec').addEventListener('change', act(() => pg.set_codec($('codec').value)));
  $('ckpt-close').addEventListener('click', () => { shownCheckpoint = null; render(); });
  wireEditor();
  render();
}

// The SQL editor: Run sends the text to the lab; an example fills the editor and runs.
// Editing drops the error mark (it pointed into the text as it was).
function wireEditor() {
  const ta = $('sql-text');
  const run = () => { pg.set_query(ta.value); render(); };
  $('sql-run').addEventListener('click', run);
  ta.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(); } });
  ta.addEventListener('input', () => { $('sql-back').textContent = `${ta.value}\n`; });
  ta.addEventListener('scroll', () => { $('sql-back').scrollTop = ta.scrollTop; });
  $('sql-example').addEventListener('change', (ev) => {
    if (!ev.target.value) return;
    ta.value = ev.target.value;
    ev.target.value = '';
    run();
  });
}

// The upgrade lab: a button per version; the running one is pressed.
function renderUpgrade(v) {
  const card = $('upgrade-card');
  card.hidden = !v.upgrade;
  if (!v.upgrade) return;
  const u = v.upgrade;
  $('upgrade-versions').replaceChildren(...u.versions.map((ver) => el('button', {
    'data-testid': `deploy-${ver.version}`,
    class: ver.version === u.version ? 'primary' : '',
    'aria-pressed': String(ver.version === u.version),
    text: `${ver.version === u.version ? 'Running' : 'Deploy'} ${ver.title.replace(/^Upgrade: /, '')}`,
    onclick: () => { pg.deploy(ver.version); render(); },
  })));
  $('upgrade-note').textContent = u.upgraded_at != null
    ? `Version ${u.version} was migrated from version 1's checkpoint at offset ${u.upgraded_at}: the reference run is a version 1 run to that offset, upgraded there without crashing.`
    : `Version ${u.version} runs from offset 0 or its own checkpoints.`;
}

let editorFilled = false;

function renderEditor(v) {
  const card = $('sql-card');
  card.hidden = !v.sql;
  if (!v.sql) return;
  const ta = $('sql-text');
  const examples = $('sql-example');
  if (examples.options.length === 1) {
    for (const e of v.sql.examples) examples.append(el('option', { value: e.sql, text: e.label }));
  }
  if (!editorFilled) { ta.value = v.sql.running; editorFilled = true; }
  $('sql-columns').textContent = v.sql.columns.join(', ');
  const e = v.sql.error;
  const back = $('sql-back');
  if (!e || e.start == null) {
    back.textContent = `${ta.value}\n`;
  } else {
    // The error's character range, as UTF-16 offsets into the text it was found in.
    const chars = Array.from(ta.value);
    const at = (n) => chars.slice(0, n).join('').length;
    const [from, to] = [at(e.start), at(e.end)];
    back.replaceChildren(ta.value.slice(0, from), el('mark', { 'data-testid': 'sql-error-mark', text: ta.value.slice(from, to) }),
      `${ta.value.slice(to)}\n`);
  }
  $('sql-error').textContent = e ? (e.line != null ? `line ${e.line}, column ${e.column}: ${e.msg}` : e.msg) : '';
}

function render() {
  view = JSON.parse(pg.view());
  const v = view;
  setStatus(v.status.level, v.status.msg);
  $('pipeline-select').value = v.instance;

  renderSteps(v);
  renderEditor(v);
  renderUpgrade(v);

  // Source.
  $('events-processed').textContent = String(v.offset ?? 0);
  $('seed').textContent = String(v.seed);
  const crashed = v.crashed;
  for (const id of ['generate', 'checkpoint', 'crash', 'send-late']) $(id).disabled = crashed;
  document.querySelector('#manual-form button[type=submit]').disabled = crashed;
  const fe = v.form_error;
  $('form-error').textContent = fe ? `${fe.field}: ${fe.message}` : '';
  for (const f of ['customer', 'amount', 'ts']) $(`m-${f}`).classList.toggle('invalid', !!fe && fe.field === f);

  // Checkpoint controls.
  $('auto-on').checked = v.auto.on;
  if (v.auto.on) $('auto-every').value = v.auto.every;
  $('codec').value = v.codec;
  $('storage-usage').textContent = v.storage.usage || '';
  $('keep-hint').textContent = `Newest first. The newest ${v.storage.keep} are kept. Click one to see its JSON. Next id: #${v.next_id}.`;
  renderCheckpoints(v);

  // Live state.
  $('state-card').classList.toggle('crashed', crashed);
  $('crashed-banner').hidden = !crashed;
  $('watermark').textContent = v.clock ? v.clock.watermark : '—';
  $('max-event-time').textContent = v.clock ? v.clock.max_event_time : '—';
  const ref = $('reference-match');
  ref.textContent = v.reference.state;
  ref.className = `badge ${v.reference.state}`;
  $('reference-detail').textContent = crashed ? '' :
    `state at offset ${v.reference.offset}; output: ${v.reference.output}`;
  $('main-stage-name').textContent = v.stages_list[0] || 'state';
  $('state-json').textContent = v.state_json;
  $('preview').textContent = v.checkpoint_preview || '(crashed: no state to checkpoint)';
  renderStages(v);

  // Output.
  fillRecords($('outputs'), v.outputs.last, 'nothing emitted yet', true);
  $('out-count').textContent = v.outputs.compacted ? `${v.outputs.total}, plus ${v.outputs.compacted} older records compacted away` : v.outputs.total;
  fillRecords($('late'), v.late.last, 'none');
  $('late-count').textContent = v.late.total;
  const dead = $('dead');
  dead.replaceChildren(...(v.dead_letters.length ? v.dead_letters.map((d) =>
    el('li', {}, d.line, el('span', { class: 'err', text: `→ ${d.error}` }))) : [el('li', { class: 'empty-state', text: 'none' })]));
  $('dead-count').textContent = v.dead_letters.length;

  // Pipeline.
  $('blurb').textContent = v.blurb;
  $('source-path').textContent = v.source_path;
  $('dsl').textContent = v.dsl;
  $('diagram').replaceChildren(diagram(v.diagram));

  // Log.
  $('log').replaceChildren(...v.log.map((l) => el('li', {},
    el('time', { text: new Date(l.t).toTimeString().slice(0, 8) }), el('span', { class: l.level, text: l.msg }))));
}

const hms = (ms) => new Date(ms).toISOString().slice(11, 19);

function fillRecords(list, items, empty, windows) {
  list.replaceChildren(...(items.length ? items.map((t) => {
    let when = null;
    if (windows) {
      const r = JSON.parse(t);
      if (r.window_start != null) when = el('span', { class: 'when', text: `[${hms(r.window_start)}–${hms(r.window_end)}]` });
    }
    return el('li', {}, when, t);
  }) : [el('li', { class: 'empty-state', text: empty })]));
}

// Which of the four steps comes next, to guide a first visit.
function renderSteps(v) {
  const steps = [...$('steps').children];
  const hasCheckpoint = v.checkpoints.some((c) => c.valid);
  const next = v.crashed ? 3 : (v.offset ?? 0) === 0 ? 0 : !hasCheckpoint ? 1 : 2;
  steps.forEach((li, i) => {
    li.classList.toggle('next', i === next);
    li.classList.toggle('done', i < next);
  });
}

function renderCheckpoints(v) {
  const list = $('checkpoint-list');
  const items = v.checkpoints.map((c) => {
    const li = el('li', { 'data-testid': 'checkpoint-item', class: c.valid ? '' : 'bad', title: c.name, 'data-name': c.name },
      el('span', { class: 'id', text: c.id != null ? `#${c.id}` : '?' }),
      el('span', { class: 'meta', text: c.time }),
      el('span', {},
        c.offset != null ? `offset ${c.offset}` : (c.error ? 'unreadable' : ''),
        el('span', { class: 'tag', text: `${c.size_label} ${c.codec}` }),
        c.is_latest ? el('span', { class: 'tag latest', text: 'latest' }) : null,
        c.valid ? null : el('span', { class: 'tag bad', text: 'corrupt' })),
      el('span', { class: 'meta', text: c.stored_as }));
    li.addEventListener('click', () => { shownCheckpoint = c.name; render(); });
    return li;
  });
  list.replaceChildren(...items);
  if (!items.length) list.append(el('li', { class: 'empty', text: 'No checkpoint in localStorage yet.' }));
  const viewer = $('ckpt-viewer');
  if (shownCheckpoint && v.checkpoints.some((c) => c.name === shownCheckpoint)) {
    const c = JSON.parse(pg.checkpoint_json(shownCheckpoint));
    viewer.hidden = false;
    $('ckpt-name').textContent = c.name;
    $('ckpt-note').textContent = c.error ? `Cannot be restored: ${c.error}` : (c.note || '');
    $('ckpt-json').textContent = c.json || c.raw || '';
  } else {
    viewer.hidden = true;
  }
}

function renderStages(v) {
  const box = $('stages');
  box.replaceChildren(...v.stages.map((s) => {
    const head = el('h3', {}, el('code', { text: s.name }), ' ', el('span', { class: 'what', text: s.what }),
      s.stage_watermark ? el('span', { class: 'what', text: ` · stage watermark ${s.stage_watermark}` }) : null);
    const align = (i) => (i >= s.label_cols ? 'num' : '');
    let body;
    if (!s.rows.length) {
      body = el('div', { class: 'empty-state', text: v.crashed ? 'nothing in memory' : 'empty' });
    } else {
      const thead = el('tr', {}, ...s.header.map((h, i) => el('th', { class: align(i), text: h })));
      const rows = s.rows.map((r) => el('tr', {}, ...r.map((c, i) => el('td', { class: align(i), text: c }))));
      body = el('div', { class: 'table-wrap' }, el('table', {}, el('thead', {}, thead), el('tbody', {}, ...rows)));
    }
    const json = el('details', {}, el('summary', { text: 'JSON' }), el('pre', { text: s.json }));
    return el('div', { class: 'stage', 'data-testid': 'stage', 'data-stage': s.name }, head, body, json);
  }));
}

// A left-to-right drawing of the plan's boxes (sources, stages, sinks; laid out in Rust
// by depth) and the arrows into each: one per input, two for a join.
function diagram(nodes) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs = {}, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, val] of Object.entries(attrs)) e.setAttribute(k, val);
    if (text != null) e.textContent = text;
    return e;
  };
  if (!nodes || !nodes.length) return document.createTextNode('');
  const W = 240, H = 90, GX = 46, GY = 18;
  const cols = {};
  for (const n of nodes) { n.row = (cols[n.depth] = (cols[n.depth] ?? -1) + 1); }
  const rows = Math.max(...Object.values(cols)) + 1;
  const maxDepth = Math.max(...nodes.map((n) => n.depth));
  const width = (maxDepth + 1) * (W + GX), height = rows * (H + GY) + 4;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'pipeline stages' });
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' });
  marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a94a6' }));
  defs.append(marker);
  root.append(defs);
  const pos = (n) => ({ x: n.depth * (W + GX) + 2, y: n.row * (H + GY) + 2 });
  const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
  for (const n of nodes) {
    for (const input of n.inputs) {
      const from = byId[input];
      if (!from) continue;
      const a = pos(from), b = pos(n);
      root.append(svg('path', { d: `M${a.x + W},${a.y + H / 2} C${a.x + W + GX / 2},${a.y + H / 2} ${b.x - GX / 2},${b.y + H / 2} ${b.x - 2},${b.y + H / 2}`,
        fill: 'none', stroke: '#8a94a6', 'stroke-width': 1.5, 'marker-end': 'url(#arrow)', 'data-testid': 'diagram-edge', 'data-from': from.id, 'data-to': n.id }));
    }
  }
  for (const n of nodes) {
    const p = pos(n);
    const g = svg('g', { 'data-testid': 'diagram-node', 'data-id': n.id, 'data-kind': n.kind });
    const fill = n.kind === 'source' ? '#eaf1fd' : n.kind === 'sink' ? '#f0f2f5' : n.stateful ? '#fff7e6' : '#fff';
    const stroke = n.kind === 'source' ? '#2f6fde' : n.stateful ? '#d08a00' : '#aab2bf';
    g.append(svg('rect', { x: p.x, y: p.y, width: W, height: H, rx: 8, fill, stroke, 'stroke-width': 1.5 }));
    g.append(svg('text', { x: p.x + 10, y: p.y + 19, 'font-weight': 600, 'font-size': 13, 'font-family': 'ui-monospace, monospace', fill: '#1c2430' }, n.title));
    if (n.stateful) g.append(svg('text', { x: p.x + W - 8, y: p.y + 19, 'text-anchor': 'end', 'font-size': 10.5, fill: '#b26a00' }, 'state → checkpoints'));
    const lines = [];
    for (const line of n.lines) {
      // Wrap long lines at ", ".
      let cur = '';
      for (const part of line.split(', ')) {
        const next = cur ? `${cur}, ${part}` : part;
        if (next.length > 34 && cur) { lines.push(`${cur},`); cur = `  ${part}`; } else cur = next;
      }
      lines.push(cur);
    }
    lines.slice(0, 4).forEach((line, i) => {
      const t = line.length > 34 ? `${line.slice(0, 33)}…` : line;
      g.append(svg('text', { x: p.x + 10, y: p.y + 36 + i * 14, 'font-size': 11.5, 'font-family': 'ui-monospace, monospace', fill: '#4a5568' }, t));
    });
    root.append(g);
  }
  return root;
}

main();
