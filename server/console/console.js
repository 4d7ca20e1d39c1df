// The operator's console: polls /console/api/ once a second and draws the last 15 minutes on
// canvases. No framework: a few elements are updated in place.
const $ = (selector) => document.querySelector(selector);
const WINDOW_SECS = 15 * 60;
const TOKEN_KEY = 'overtone-console-token';

// The token comes from the sign-in form or once from the address (#token=...), which is then
// cleared so it stays out of the history; it is kept for this tab only.
let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
const fromAddress = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromAddress) {
  token = fromAddress;
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, '', location.pathname);
}

class Refused extends Error {}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`/console/api/${path}`, { method, headers, body });
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (response.status === 401) throw new Refused(answer.error);
  if (!response.ok) throw new Error(answer.error ?? response.statusText);
  return answer;
}

// Charts: each line is a function of two consecutive samples (per-second rates are differences).
const perSecond = (field) => (a, b) => a && b && b.time > a.time ? Math.max(0, b[field] - a[field]) / (b.time - a.time) : null;
const CHARTS = [
  { id: 'connections', title: 'Connections', lines: [{ name: 'open', color: '#3b5bdb', of: (_, b) => b.connections }] },
  { id: 'messages', title: 'Messages /s', lines: [
    { name: 'in', color: '#0ca678', of: perSecond('frames_in') },
    { name: 'out (deliveries)', color: '#3b5bdb', of: perSecond('frames_out') }] },
  { id: 'api', title: 'HTTP API /s', lines: [
    { name: 'requests', color: '#3b5bdb', of: perSecond('api_requests') },
    { name: 'errors', color: '#d9480f', of: perSecond('api_errors') }] },
  { id: 'webhooks', title: 'Webhooks /s', lines: [
    { name: 'delivered', color: '#0ca678', of: perSecond('webhooks_delivered') },
    { name: 'failed', color: '#d9480f', of: perSecond('webhooks_failed') }] },
  { id: 'redis', title: 'Redis', cluster: true, lines: [
    { name: 'lag ms', color: '#7048e8', of: (a, b) => (a && b.relayed > a.relayed ? (b.relay_micros - a.relay_micros) / (b.relayed - a.relayed) / 1000 : null) },
    { name: 'link', color: '#0ca678', of: (_, b) => (b.redis === null ? null : Number(b.redis)) }] },
];

let samples = [];
let fields = [];

function buildCharts() {
  for (const chart of CHARTS) {
    const figure = document.createElement('figure');
    figure.id = `chart-${chart.id}`;
    figure.hidden = Boolean(chart.cluster);
    const caption = document.createElement('figcaption');
    caption.innerHTML = `<b>${chart.title}</b>`;
    chart.values = chart.lines.map((line) => {
      const key = document.createElement('span');
      key.className = 'key';
      key.style.setProperty('--c', line.color);
      const value = document.createElement('output');
      value.dataset.value = `${chart.id}-${line.name.split(' ')[0]}`;
      key.append(`${line.name} `, value);
      caption.append(key);
      return value;
    });
    chart.canvas = document.createElement('canvas');
    figure.append(caption, chart.canvas);
    $('#charts').append(figure);
  }
}

const format = (v) => (v === null || v === undefined ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(1));

function draw(chart) {
  const { canvas } = chart;
  const ratio = devicePixelRatio || 1;
  const width = canvas.clientWidth * ratio;
  const height = canvas.clientHeight * ratio;
  if (!width) return;
  canvas.width = width;
  canvas.height = height;
  const lines = chart.lines.map((line) => samples.map((b, i) => [b.time, line.of(samples[i - 1], b)]));
  lines.forEach((points, i) => { chart.values[i].value = format(points.at(-1)?.[1]); });
  const max = Math.max(1, ...lines.flat().map(([, v]) => v ?? 0)) * 1.1;
  const end = samples.at(-1)?.time ?? 0;
  // Until 15 minutes are sampled, the time axis spans what there is (a minute at least).
  const span = Math.min(WINDOW_SECS, Math.max(60, end - (samples[0]?.time ?? end)));
  const x = (t) => width - ((end - t) / span) * width;
  const y = (v) => height - (v / max) * (height - 2) - 1;
  const context = canvas.getContext('2d');
  context.strokeStyle = '#e4e7ec';
  context.beginPath();
  context.moveTo(0, height - 0.5);
  context.lineTo(width, height - 0.5);
  context.stroke();
  context.fillStyle = '#667085';
  context.font = `${10 * ratio}px system-ui`;
  context.fillText(format(Math.round(max)), 2, 10 * ratio);
  context.lineWidth = 1.5 * ratio;
  chart.lines.forEach((line, i) => {
    context.strokeStyle = line.color;
    context.beginPath();
    let drawing = false;
    for (const [t, v] of lines[i]) {
      if (v === null) { drawing = false; continue; }
      if (drawing) context.lineTo(x(t), y(v)); else context.moveTo(x(t), y(v));
      drawing = true;
    }
    context.stroke();
  });
}

async function pollSeries() {
  const after = samples.at(-1)?.time ?? 0;
  const answer = await api(`series?after=${after}`);
  fields = answer.fields;
  for (const row of answer.samples) samples.push(Object.fromEntries(fields.map((f, i) => [f, row[i]])));
  samples = samples.slice(-WINDOW_SECS);
  const last = samples.at(-1);
  if (last) {
    const clustered = last.redis !== null;
    $('#chart-redis').hidden = !clustered;
    $('#status').textContent = clustered
      ? `${last.nodes} node${last.nodes === 1 ? '' : 's'} · Redis ${last.redis ? 'linked' : 'DOWN'}`
      : 'single node';
  }
  CHARTS.forEach(draw);
}

// One app at a time: its busiest channels, and one channel in detail.
const app = () => encodeURIComponent($('#app').value);
let openChannel = '';

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text;
}

async function pollApp() {
  const answer = await api(`apps/${app()}/channels`);
  $('#occupied').textContent = `${answer.occupied} occupied`;
  const body = $('#busiest tbody');
  body.replaceChildren();
  for (const channel of answer.channels) {
    const row = body.insertRow();
    cell(row, channel.name);
    cell(row, channel.subscriptions);
    cell(row, channel.name.startsWith('presence-') ? channel.users : '');
    row.addEventListener('click', () => show(channel.name));
  }
}

function show(channel) {
  $('#channel').value = channel;
  $('#publish-channel').value = channel;
  openChannel = channel;
  pollChannel().catch(report);
}

const json = (value) => JSON.stringify(value);

async function pollChannel() {
  if (!openChannel) return;
  const view = await api(`apps/${app()}/channels/${encodeURIComponent(openChannel)}`);
  $('#channel-details').hidden = false;
  const { info } = view;
  $('#subscribers').textContent = info.subscription_count ?? 0;
  $('#cache').textContent = info.cache ? `${info.cache.event} ${json(info.cache.data)} (ttl ${info.cache.ttl} s)` : '–';
  const members = view.members ?? [];
  $('#member-count').textContent = view.members ? `${members.length}` : '(not a presence channel)';
  $('#members').replaceChildren(...members.map((m) => listItem(`${m.id} ${json(m.info)}`)));
  const events = view.history?.events ?? [];
  $('#history').replaceChildren(...events.reverse().map((e) => listItem(`${e.event} ${typeof e.data === 'string' ? e.data : json(e.data)}`)));
  if (!view.history) $('#history').replaceChildren(listItem('(this channel keeps no history)'));
}

function listItem(text) {
  const li = document.createElement('li');
  li.textContent = text;
  return li;
}

function report(err) {
  if (err instanceof Refused) return signIn(err.message);
  $('#outcome').textContent = err.message;
  $('#outcome').className = 'error';
}

function done(message) {
  $('#outcome').textContent = message;
  $('#outcome').className = '';
}

$('#open-channel').addEventListener('submit', (e) => {
  e.preventDefault();
  show($('#channel').value.trim());
});

$('#publish').addEventListener('submit', async (e) => {
  e.preventDefault();
  const channel = $('#publish-channel').value.trim();
  const name = $('#publish-event').value.trim();
  if (!confirm(`Publish "${name}" to ${channel} on app ${$('#app').value}?`)) return;
  let data = $('#publish-data').value;
  try { data = JSON.parse(data); } catch { /* sent as the string it is */ }
  try {
    await api(`apps/${app()}/events`, { method: 'POST', body: json({ channel, name, data }) });
    done(`Published ${name} to ${channel}.`);
    if (channel === openChannel) await pollChannel();
  } catch (err) { report(err); }
});

$('#terminate').addEventListener('submit', async (e) => {
  e.preventDefault();
  const user = $('#terminate-user').value.trim();
  if (!confirm(`Close every connection of user ${user} on app ${$('#app').value}?`)) return;
  try {
    await api(`apps/${app()}/users/${encodeURIComponent(user)}/terminate_connections`, { method: 'POST', body: '{}' });
    done(`Terminated ${user}'s connections.`);
  } catch (err) { report(err); }
});

let timer;

function signIn(message) {
  clearInterval(timer);
  $('#console').hidden = true;
  $('#sign-in').hidden = false;
  $('#refused').textContent = message ?? '';
}

$('#sign-in').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('#token').value;
  sessionStorage.setItem(TOKEN_KEY, token);
  start();
});

async function start() {
  try {
    const overview = await api('overview');
    $('#sign-in').hidden = true;
    $('#console').hidden = false;
    const select = $('#app');
    if (!select.options.length) {
      select.append(...overview.apps.map((a) => new Option(a.id, a.id)));
      select.addEventListener('change', () => { openChannel = ''; $('#channel-details').hidden = true; tick(); });
    }
    const tick = () => Promise.all([pollSeries(), pollApp(), pollChannel()]).catch(report);
    await tick();
    clearInterval(timer);
    timer = setInterval(tick, 1000);
  } catch (err) {
    if (err instanceof Refused) signIn(token ? err.message : '');
    else report(err);
  }
}

buildCharts();
addEventListener('resize', () => CHARTS.forEach(draw));
start();
