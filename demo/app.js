// The demo page: uses the overtone package exactly as an app would (`/pkg/` is the built npm
// package), with the demo's small backend under /demo/api/.
//
// Query parameters: `channel` / `event` (the public feed, default demo / greeting) and `away`
// (ms hidden before this tab counts as away; the SDK's default otherwise).
import Echo from '/pkg/index.js';

const params = new URLSearchParams(location.search);
const feedChannel = params.get('channel') ?? 'demo';
const feedEvent = params.get('event') ?? 'greeting';
const awayAfterMs = Number(params.get('away')) || undefined;
const SESSION_KEY = 'overtone-demo:session';

const $ = (id) => document.getElementById(id);
const { key } = await (await fetch('/demo/config.json')).json();

/** An element with a class and text, in one line. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function newEcho(session) {
  return new Echo({
    broadcaster: 'reverb',
    key,
    wsHost: location.hostname,
    wsPort: Number(location.port || 80),
    forceTLS: location.protocol === 'https:',
    authEndpoint: '/broadcasting/auth',
    bearerToken: session?.token,
    awayAfterMs,
    badgeScope: session ? `overtone-demo:${session.user.id}` : undefined,
  });
}

// ---- connection indicator ----

const CONNECTION_TEXT = {
  connected: 'Connected',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  disconnected: 'Offline',
  failed: 'Offline',
};

function showConnection(status) {
  const state = navigator.onLine ? status : 'disconnected';
  $('connection').dataset.state = state;
  $('connection-text').textContent = CONNECTION_TEXT[state] ?? state;
}

// ---- the public feed (works signed out too) ----

function listenToFeed(echo) {
  $('channel-name').textContent = feedChannel;
  echo.channel(feedChannel).listen(`.${feedEvent}`, (data) => {
    $('events').append(el('li', '', `${feedEvent}: ${JSON.stringify(data)}`));
  });
}

// ---- signing in ----

function savedSession() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

async function signIn(name) {
  $('sign-in-error').textContent = '';
  const response = await fetch('/demo/api/session', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  const body = await response.json();
  if (!response.ok) {
    $('sign-in-error').textContent = body.error;
    return;
  }
  localStorage.setItem(SESSION_KEY, JSON.stringify(body));
  location.reload();
}

function showSignIn() {
  $('sign-in').hidden = false;
  for (const button of document.querySelectorAll('.person')) {
    button.addEventListener('click', () => signIn(button.dataset.name));
  }
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('name').value);
  });
  const echo = newEcho(null);
  echo.connector.onConnectionChange(showConnection);
  listenToFeed(echo);
}

// ---- signed in ----

function start(session) {
  const me = session.user;
  const echo = newEcho(session);
  window.demoEcho = echo; // for poking at in the console
  const api = async (method, path, body) => {
    const response = await fetch(path, {
      method,
      headers: {
        Authorization: `Bearer ${session.token}`,
        'Content-Type': 'application/json',
        ...echo.socketIdHeaders(),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const reply = await response.json();
    if (response.status === 401) signOut();
    if (!response.ok) throw new Error(reply.error);
    return reply;
  };
  const signOut = () => {
    localStorage.removeItem(SESSION_KEY);
    location.reload();
  };

  $('app').hidden = false;
  $('me').hidden = false;
  $('bell-area').hidden = false;
  $('me-name').textContent = me.name;
  $('me-avatar').textContent = me.name.slice(0, 1).toUpperCase();
  $('me-avatar').style.background = me.color;
  $('sign-out').addEventListener('click', signOut);

  echo.connector.onConnectionChange(showConnection);
  for (const change of ['online', 'offline']) {
    addEventListener(change, () => showConnection(echo.connectionStatus()));
  }

  listenToFeed(echo);
  startChat(echo, api, me);
  startHall(echo, api, me);
  startBell(echo, me);
}

// ---- chat ----

function startChat(echo, api, me) {
  const chat = echo.join('demo.chat');
  const members = new Map(); // id -> {id, name, color}
  const shown = new Set(); // message ids on screen
  let lastId = 0;

  const nameOf = (id) => members.get(id)?.name ?? id;

  function renderMembers() {
    const statuses = chat.statuses();
    const list = $('members');
    list.replaceChildren();
    for (const member of [...members.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const status = statuses[member.id] ?? 'online';
      const item = el('li', 'member');
      item.dataset.user = member.id;
      item.dataset.status = status;
      const dot = el('span', `presence ${status}`);
      dot.setAttribute('aria-hidden', 'true');
      const name = el('span', 'member-name', member.id === me.id ? `${member.name} (you)` : member.name);
      name.style.color = member.color;
      item.append(dot, name);
      if (status === 'away') item.append(el('span', 'member-status', 'away'));
      else item.append(el('span', 'visually-hidden', ', online'));
      list.append(item);
    }
    $('chat-count').textContent = `${members.size} here`;
  }

  function addMessage(message) {
    if (shown.has(message.id)) return;
    shown.add(message.id);
    lastId = Math.max(lastId, message.id);
    const item = el('li', message.user.id === me.id ? 'message mine' : 'message');
    item.dataset.id = message.id;
    const author = el('span', 'author', message.user.name);
    author.style.color = message.user.color;
    const time = el('time', 'muted small', new Date(message.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    time.dateTime = new Date(message.at).toISOString();
    const text = el('p', 'text');
    // @mentions of this user stand out; the rest is plain text.
    for (const part of message.text.split(/(@[A-Za-z0-9-]+)/)) {
      if (part.toLowerCase() === `@${me.id}`) text.append(el('mark', '', part));
      else text.append(part);
    }
    item.append(author, time, text);
    // History may arrive after live messages: keep id order.
    const later = [...$('messages').children].find((other) => Number(other.dataset.id) > message.id);
    $('messages').insertBefore(item, later ?? null);
    item.scrollIntoView({ block: 'nearest' });
  }

  // What was said since the last message on screen (at first, the recent history).
  const catchUp = async () => {
    try {
      const query = lastId ? `?after=${lastId}` : '';
      const { messages } = await api('GET', `/demo/api/chat/messages${query}`);
      messages.forEach(addMessage);
    } catch (error) {
      $('chat-error').textContent = error.message;
    }
  };
  // The recent history once; after a reconnect the server replays what this page missed, and
  // the page asks the demo's API only when it could not (away longer than the history).
  let loaded = false;
  chat
    .subscribed(() => {
      if (loaded) return;
      loaded = true;
      catchUp();
    })
    .recoveryFailed(catchUp);
  chat
    .here((list) => {
      members.clear();
      for (const member of list) members.set(member.id, member);
      renderMembers();
    })
    .joining((member) => {
      members.set(member.id, member);
      renderMembers();
    })
    .leaving((member) => {
      members.delete(member.id);
      renderMembers();
    })
    .listen('.message', addMessage);
  chat.onStatusChange(renderMembers);
  chat.onTypingChange((typists) => {
    const names = typists.filter(({ id }) => id !== me.id).map(({ id, info }) => info?.name ?? nameOf(id));
    $('typing').textContent =
      names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
  });

  const input = $('chat-input');
  input.addEventListener('input', () => {
    if (input.value) chat.typing();
    else chat.stopTyping();
  });
  $('chat-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    $('chat-error').textContent = '';
    chat.stopTyping();
    try {
      addMessage(await api('POST', '/demo/api/chat/messages', { text }));
      input.value = '';
    } catch (error) {
      $('chat-error').textContent = error.message;
    }
  });
}

// ---- the event hall ----

function startHall(echo, api, me) {
  const hall = echo.join('demo.hall');
  const map = $('seat-map');
  const seats = new Map(); // label -> {seat, state, by?, expiresAt?}
  const buttons = new Map(); // label -> button
  let focused = null;

  function describe(seat) {
    const where = `Row ${seat.seat[0]}, seat ${seat.seat.slice(1)}`;
    if (seat.state === 'free') return `${where}, free`;
    if (seat.state === 'sold') return `${where}, sold to ${seat.by.id === me.id ? 'you' : seat.by.name}`;
    return `${where}, held by ${seat.by.id === me.id ? 'you' : seat.by.name}`;
  }

  function renderSeat(seat) {
    if (seat.expiresInMs !== undefined) seat.expiresAt = Date.now() + seat.expiresInMs;
    seats.set(seat.seat, seat);
    const button = buttons.get(seat.seat);
    if (!button) return;
    const mine = seat.by?.id === me.id;
    button.className = `seat ${seat.state}${mine ? ' mine' : ''}`;
    button.dataset.state = seat.state;
    button.dataset.holder = seat.by?.id ?? '';
    button.setAttribute('aria-label', describe(seat));
    button.title = describe(seat);
    button.style.setProperty('--holder', seat.by?.color ?? '');
    button.textContent = seat.state === 'held' && !mine ? seat.by.name.slice(0, 1).toUpperCase() : '';
    renderCart();
  }

  function renderCart() {
    const held = [...seats.values()].filter((s) => s.state === 'held' && s.by.id === me.id);
    $('buy').disabled = held.length === 0;
    // The seats are read out when they change; the clock, ticking every second, is not.
    const text = held.length === 0 ? 'You hold no seats.' : `You hold ${held.map((s) => s.seat).join(', ')}.`;
    if ($('cart-seats').textContent !== text) $('cart-seats').textContent = text;
    if (held.length === 0) {
      $('cart-clock').textContent = '';
      return;
    }
    const soonest = Math.min(...held.map((s) => s.expiresAt));
    const secs = Math.max(0, Math.round((soonest - Date.now()) / 1000));
    $('cart-clock').textContent = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')} left to buy`;
  }
  setInterval(renderCart, 1000);

  function build(rows, perRow, list) {
    map.replaceChildren();
    buttons.clear();
    map.dataset.perRow = perRow;
    for (let r = 0; r < rows; r++) {
      const row = el('div', 'seat-row');
      const letter = list[r * perRow].seat[0];
      row.append(el('span', 'row-label', letter));
      for (let n = 0; n < perRow; n++) {
        const label = list[r * perRow + n].seat;
        const button = el('button', 'seat');
        button.type = 'button';
        button.dataset.seat = label;
        button.tabIndex = label === (focused ?? list[0].seat) ? 0 : -1;
        button.addEventListener('click', () => toggle(label));
        buttons.set(label, button);
        row.append(button);
      }
      row.append(el('span', 'row-label', letter));
      map.append(row);
    }
    list.forEach(renderSeat);
  }

  // One tab stop for the whole map; arrow keys move between seats (roving tabindex).
  map.addEventListener('keydown', (event) => {
    const labels = [...buttons.keys()];
    const perRow = Number(map.dataset.perRow);
    const at = labels.indexOf(document.activeElement?.dataset.seat);
    if (at < 0) return;
    const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -perRow, ArrowDown: perRow, Home: -(at % perRow), End: perRow - 1 - (at % perRow) }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    const next = labels[Math.min(labels.length - 1, Math.max(0, at + step))];
    buttons.get(labels[at]).tabIndex = -1;
    buttons.get(next).tabIndex = 0;
    buttons.get(next).focus();
    focused = next;
  });

  async function toggle(label) {
    const seat = seats.get(label);
    $('seat-status').textContent = '';
    try {
      if (seat.state === 'sold') {
        $('seat-status').textContent = `Seat ${label} is sold.`;
      } else if (seat.state === 'held' && seat.by.id !== me.id) {
        // Taken as far as this page knows: no point asking to hold it, ask to hear when it frees.
        renderSeat(await api('POST', `/demo/api/seats/${label}/watch`));
        $('seat-status').textContent = `Seat ${label} is held by ${seat.by.name}: you will be notified if it frees up.`;
      } else if (seat.state === 'held') {
        renderSeat(await api('DELETE', `/demo/api/seats/${label}/hold`));
      } else {
        // Success needs no words here: the seat and the cart line (read out live) change.
        renderSeat(await api('POST', `/demo/api/seats/${label}/hold`));
      }
    } catch (error) {
      $('seat-status').textContent = error.message;
    }
  }

  $('buy').addEventListener('click', async () => {
    try {
      const { seats: sold } = await api('POST', '/demo/api/seats/buy');
      sold.forEach(renderSeat);
      $('seat-status').textContent = `Bought ${sold.map((s) => s.seat).join(', ')}. Enjoy the show!`;
    } catch (error) {
      $('seat-status').textContent = error.message;
    }
  });

  const showViewers = () => {
    const count = hall.members().length;
    $('viewers').textContent = `${count} viewing`;
  };
  // After every (re)subscription: the whole hall, since holds may have changed meanwhile.
  hall.subscribed(async () => {
    try {
      const { rows, seatsPerRow, seats: list } = await api('GET', '/demo/api/seats');
      if (buttons.size === list.length) list.forEach(renderSeat);
      else build(rows, seatsPerRow, list);
      map.dataset.ready = 'true';
    } catch (error) {
      $('seat-status').textContent = error.message;
    }
  });
  hall
    .here(showViewers)
    .joining(showViewers)
    .leaving(showViewers)
    .listen('.seats', ({ seats: changed }) => changed.forEach(renderSeat));
}

// ---- notifications ----

function startBell(echo, me) {
  const items = []; // newest first: {id, category, text, at, read}
  const bell = $('bell');
  const panel = $('notifications');

  function renderBadge(counts) {
    const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
    $('badge').hidden = total === 0;
    $('badge').textContent = total > 99 ? '99+' : String(total);
    bell.setAttribute('aria-label', `Notifications, ${total === 0 ? 'none' : total} unread`);
    // Another tab may have marked some read: a category with no unread left is all read here too.
    for (const item of items) if (!counts[item.category]) item.read = true;
    renderList();
  }

  function renderList() {
    const list = $('notification-list');
    list.replaceChildren();
    $('no-notifications').hidden = items.length > 0;
    for (const item of items) {
      const row = el('li', item.read ? 'notification read' : 'notification');
      row.dataset.id = item.id;
      const body = el('div', 'notification-body');
      body.append(el('p', '', item.text), el('time', 'muted small', new Date(item.at).toLocaleTimeString()));
      row.append(body);
      if (!item.read) {
        const mark = el('button', 'link-button', 'Mark read');
        mark.type = 'button';
        mark.setAttribute('aria-label', `Mark read: ${item.text}`);
        mark.addEventListener('click', () => {
          item.read = true;
          echo.badges.markRead({ id: item.id });
          renderList();
        });
        row.append(mark);
      }
      list.append(row);
    }
  }

  echo
    .private(`demo.user.${me.id}`)
    .notification((notification) => {
      if (items.some((item) => item.id === notification.id)) return;
      items.unshift({ ...notification, read: false });
      renderList();
    })
    .subscribed(() => renderBadge(echo.badges.counts()));
  echo.badges.onChange(renderBadge);

  const setOpen = (open) => {
    panel.hidden = !open;
    bell.setAttribute('aria-expanded', String(open));
  };
  bell.addEventListener('click', () => setOpen(panel.hidden));
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !panel.hidden) {
      setOpen(false);
      bell.focus();
    }
  });
  document.addEventListener('click', (event) => {
    if (!panel.hidden && !$('bell-area').contains(event.target)) setOpen(false);
  });
  $('mark-all').addEventListener('click', () => {
    for (const item of items) item.read = true;
    echo.badges.markRead('all');
    renderList();
  });
  renderList();
}

const session = savedSession();
if (session?.token && session.user) start(session);
else showSignIn();
