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

/** A time of day, the one way the page shows times (chat and notifications alike). */
function timeElement(ms) {
  const time = el('time', 'muted small', new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  time.dateTime = new Date(ms).toISOString();
  return time;
}

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
  const connected = () => echo.connectionStatus() === 'connected';
  // The demo's API; failures are Errors whose message a person can act on.
  const api = async (method, path, body) => {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: {
          Authorization: `Bearer ${session.token}`,
          'Content-Type': 'application/json',
          ...echo.socketIdHeaders(),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new Error(connected()
        ? 'The server did not answer. Try again in a moment.'
        : 'The page is not connected. Try again once it says Connected.');
    }
    const reply = await response.json().catch(() => ({ error: `The server answered ${response.status}. Try again in a moment.` }));
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
  // Signed in on the connection too: the server keeps this user's read receipts on private
  // channels (the direct messages) by the signed-in user.
  echo.signin();
  startChat(echo, api, me, startDirect(echo, api, me));
  startHall(echo, api, me);
  startBell(echo, api, me);
}

// ---- chat ----

/** "busy — In a meeting", "away for 5 min", "on mobile": what a member shows beyond their name. */
function describeStatus(member) {
  if (!member) return '';
  const parts = [];
  if (member.status && member.status !== 'online') {
    const since = member.status === 'away' && member.awaySince ? ` for ${minutesSince(member.awaySince)}` : '';
    parts.push(member.status + since + (member.message ? ` — ${member.message}` : ''));
  } else if (member.message) {
    parts.push(member.message);
  }
  if (member.device === 'mobile') parts.push('on mobile');
  return parts.join(' · ');
}

function minutesSince(ms) {
  const minutes = Math.floor((Date.now() - ms) / 60000);
  return minutes < 1 ? 'less than a minute' : `${minutes} min`;
}

/** "Seen by Ana, Bob" under my last message: who else read up to it. */
function seenLine(channel, messages, me, nameOf) {
  const mine = messages.filter((m) => m.user.id === me.id).at(-1);
  if (!mine) return '';
  const readers = channel.readers(mine.id);
  return readers.length === 0 ? '' : `Seen by ${readers.map(nameOf).join(', ')}`;
}

function startChat(echo, api, me, direct) {
  const chat = echo.join('demo.chat');
  const members = new Map(); // id -> {id, name, color}
  const shown = new Set(); // message ids on screen
  let lastId = 0;

  const nameOf = (id) => everyone.get(id)?.name ?? id;

  const everyone = new Map(); // id -> {id, name, color}: members now and before, for names

  function renderMembers() {
    const statuses = chat.statuses();
    const { members: shows, left } = chat.memberStatuses();
    const list = $('members');
    list.replaceChildren();
    for (const member of [...members.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const status = statuses[member.id] ?? 'online';
      const shown = shows[member.id]?.status ?? status;
      const item = el('li', 'member');
      item.dataset.user = member.id;
      item.dataset.status = shown;
      const dot = el('span', `presence ${shown === 'busy' ? 'busy' : status}`);
      dot.setAttribute('aria-hidden', 'true');
      const name = el('span', 'member-name', member.id === me.id ? `${member.name} (you)` : member.name);
      name.style.color = member.color;
      item.append(dot, name);
      if (status === 'away') item.append(el('span', 'member-status', 'away'));
      else item.append(el('span', 'visually-hidden', ', online'));
      const note = describeStatus(shows[member.id]);
      if (note) item.append(el('span', 'member-note', note));
      list.append(item);
    }
    $('chat-count').textContent = `${members.size} here`;
    // Who left, and when they were last seen (the server remembers an hour of it).
    const gone = $('left-members');
    gone.replaceChildren();
    for (const [id, at] of Object.entries(left).sort((a, b) => b[1] - a[1])) {
      if (members.has(id)) continue;
      const item = el('li', 'member');
      item.dataset.user = id;
      item.append(el('span', 'member-name', everyone.get(id)?.name ?? id), el('span', 'member-note', 'last seen '), timeElement(at));
      gone.append(item);
    }
  }

  // Your status, on every presence channel you are in, without a reconnect.
  $('status-form').addEventListener('submit', (event) => {
    event.preventDefault();
    echo.setStatus($('status-pick').value, $('status-message').value.trim());
  });

  // Read receipts in the room: what is on screen while the page is visible is read.
  const roomMessages = [];
  function markShownRead() {
    if (document.hidden) return;
    for (const message of roomMessages) chat.markRead(message.id);
  }
  const renderSeen = () => {
    $('seen').textContent = seenLine(chat, roomMessages, me, nameOf);
  };
  chat.onReadChange(renderSeen);
  document.addEventListener('visibilitychange', markShownRead);

  function addMessage(message) {
    if (shown.has(message.id)) return;
    shown.add(message.id);
    lastId = Math.max(lastId, message.id);
    const item = el('li', message.user.id === me.id ? 'message mine' : 'message');
    item.dataset.id = message.id;
    const author = el('span', 'author', message.user.name);
    author.style.color = message.user.color;
    const time = timeElement(message.at);
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
    roomMessages.push(message);
    roomMessages.sort((a, b) => a.id - b.id);
    markShownRead();
    renderSeen();
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
      setLive(true);
      if (!loaded) {
        loaded = true;
        catchUp();
      }
    })
    .recoveryFailed(catchUp);
  chat
    .here((list) => {
      members.clear();
      for (const member of list) {
        members.set(member.id, member);
        everyone.set(member.id, member);
        direct.meet(member);
      }
      renderMembers();
    })
    .joining((member) => {
      members.set(member.id, member);
      everyone.set(member.id, member);
      direct.meet(member);
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
  const sendButton = $('chat-send');
  // Live: connected and in the room. Typing whispers on the room's channel, so it waits for it
  // too (the SDK refuses whispers on a channel it is resubscribing), and so does sending: what is
  // sent meanwhile waits on screen and goes once the room is back.
  let live = false;
  const waiting = []; // {text, item}: typed while not live, oldest first
  function setLive(now) {
    live = now;
    sendButton.textContent = live ? 'Send' : 'Send when connected';
    if (live) sendWaiting();
  }
  echo.connector.onConnectionChange((status) => {
    if (status !== 'connected') setLive(false);
  });
  setLive(false);

  input.addEventListener('input', () => {
    if (!live) return;
    if (input.value) chat.typing();
    else chat.stopTyping();
  });

  /** Sends one message; on failure says so and puts the text back to send again. */
  async function post(text) {
    try {
      const { message, unknown } = await api('POST', '/demo/api/chat/messages', { text });
      addMessage(message);
      $('chat-note').textContent = unknown.length === 0
        ? ''
        : `Nobody called ${unknown.map((id) => `@${id}`).join(', ')} has signed in: not notified.`;
      return true;
    } catch (error) {
      $('chat-error').textContent = `Not sent: ${error.message}`;
      if (!input.value) input.value = text;
      return false;
    }
  }

  async function sendWaiting() {
    while (live && waiting.length > 0) {
      const { text, item } = waiting.shift();
      item.remove();
      if (!(await post(text))) return;
    }
  }

  $('chat-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    $('chat-error').textContent = '';
    input.value = '';
    if (!live) {
      const item = el('li', 'message mine pending');
      item.dataset.pending = '';
      item.append(el('span', 'author', me.name), el('p', 'text', text), el('p', 'muted small', 'Waiting for the connection: sent once connected.'));
      $('messages').append(item);
      item.scrollIntoView({ block: 'nearest' });
      waiting.push({ text, item });
      return;
    }
    chat.stopTyping();
    await post(text);
  });
}

// ---- direct messages ----

/**
 * One conversation per other person in the chat, on `private-chat.{a}.{b}` (only the two of
 * them may subscribe). Read receipts are the SDK's: what the open conversation shows is marked
 * read (by message id) while the page is visible; "Seen" and the unread counts follow the
 * markers the server keeps, so they agree across tabs and after a reload.
 */
function startDirect(echo, api, me) {
  const conversations = new Map(); // peer id -> {peer, channel, messages (by id)}
  let open = null; // the peer id shown

  const sorted = (c) => [...c.messages.values()].sort((a, b) => a.id - b.id);
  const unread = (c) => {
    const upTo = Number(c.channel.readUpTo() ?? 0);
    return sorted(c).filter((m) => m.user.id !== me.id && m.id > upTo).length;
  };

  function renderList() {
    const list = $('dm-list');
    list.replaceChildren();
    $('no-conversations').hidden = conversations.size > 0;
    for (const c of [...conversations.values()].sort((a, b) => a.peer.name.localeCompare(b.peer.name))) {
      const item = el('li');
      const button = el('button', '', c.peer.name);
      button.type = 'button';
      button.dataset.peer = c.peer.id;
      button.setAttribute('aria-current', String(open === c.peer.id));
      const count = unread(c);
      button.dataset.unread = count;
      if (count > 0) {
        const badge = el('span', 'unread', String(count));
        badge.setAttribute('aria-label', `${count} unread`);
        button.append(badge);
      }
      button.addEventListener('click', () => show(c));
      item.append(button);
      list.append(item);
    }
  }

  function renderSeen(c) {
    const line = $('dm-seen');
    const text = seenLine(c.channel, sorted(c), me, () => c.peer.name) ? 'Seen' : '';
    // When it turned to Seen (tests measure how soon after the other side read).
    if (text && line.textContent !== text) line.dataset.seenAt = String(Date.now());
    line.textContent = text;
  }

  function markShownRead() {
    const c = conversations.get(open);
    if (!c || document.hidden) return;
    for (const message of sorted(c)) c.channel.markRead(message.id);
  }

  function renderMessage(message) {
    const item = el('li', message.user.id === me.id ? 'message mine' : 'message');
    item.dataset.id = message.id;
    const author = el('span', 'author', message.user.name);
    author.style.color = message.user.color;
    item.append(author, timeElement(message.at), el('p', 'text', message.text));
    return item;
  }

  function show(c) {
    open = c.peer.id;
    $('dm-view').hidden = false;
    $('dm-with').textContent = `With ${c.peer.name}`;
    $('dm-messages').replaceChildren(...sorted(c).map(renderMessage));
    $('dm-messages').lastElementChild?.scrollIntoView({ block: 'nearest' });
    markShownRead();
    renderSeen(c);
    renderList();
  }

  function add(c, message) {
    if (c.messages.has(message.id)) return;
    c.messages.set(message.id, message);
    if (open === c.peer.id) show(c);
    else renderList();
  }

  /** The conversation with `peer`, subscribed on first meeting. */
  function meet(peer) {
    if (peer.id === me.id || conversations.has(peer.id)) return;
    const channel = echo.private(`chat.${[me.id, peer.id].sort().join('.')}`);
    const c = { peer, channel, messages: new Map() };
    conversations.set(peer.id, c);
    channel
      .listen('.message', (message) => add(c, message))
      // Every (re)subscription: what was said meanwhile, from the demo's API.
      .subscribed(async () => {
        try {
          const { messages } = await api('GET', `/demo/api/dm/${encodeURIComponent(peer.id)}`);
          messages.forEach((message) => add(c, message));
        } catch (error) {
          $('dm-error').textContent = error.message;
        }
      })
      .error(({ error }) => {
        $('dm-error').textContent = `The conversation with ${peer.name} is not available: ${error}`;
      });
    channel.onReadChange(() => {
      renderList();
      if (open === peer.id) renderSeen(c);
    });
    renderList();
  }

  $('dm-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const c = conversations.get(open);
    const text = $('dm-input').value.trim();
    if (!c || !text) return;
    $('dm-error').textContent = '';
    $('dm-input').value = '';
    try {
      const { message } = await api('POST', `/demo/api/dm/${encodeURIComponent(c.peer.id)}`, { text });
      add(c, message);
    } catch (error) {
      $('dm-error').textContent = `Not sent: ${error.message}`;
      $('dm-input').value = text;
    }
  });
  document.addEventListener('visibilitychange', markShownRead);

  return { meet };
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
    // Not by colour alone: others' holds show their initial, your bought seats a check.
    button.textContent = seat.state === 'held' && !mine ? seat.by.name.slice(0, 1).toUpperCase() : seat.state === 'sold' && mine ? '✓' : '';
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
    if (echo.connectionStatus() !== 'connected') {
      $('seat-status').textContent = 'Reconnecting: seats can be held again once the page says Connected.';
      return;
    }
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
  // On a phone the hall is wider than the screen: say so (the edges also fade, see the CSS).
  new ResizeObserver(() => {
    $('seat-scroll-hint').hidden = map.scrollWidth <= map.clientWidth;
  }).observe(map);

  // After every (re)subscription: the whole hall, since holds may have changed meanwhile.
  hall.subscribed(async () => {
    try {
      const { rows, seatsPerRow, seats: list } = await api('GET', '/demo/api/seats');
      const heldBefore = [...seats.values()].filter((s) => s.state === 'held' && s.by.id === me.id).map((s) => s.seat);
      if (buttons.size === list.length) list.forEach(renderSeat);
      else build(rows, seatsPerRow, list);
      map.dataset.ready = 'true';
      // Holds end with a server restart, or after the holder was gone a while: say so.
      const lost = heldBefore.filter((label) => seats.get(label).by?.id !== me.id);
      if (lost.length > 0) {
        $('seat-status').textContent = `While the page was reconnecting, your hold on ${lost.join(', ')} ended `
          + '(the server restarted, or the page was away too long). Hold it again if you still want it.';
      }
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

function startBell(echo, api, me) {
  // Newest first: {id, category, text, at}. The list is the server's (what this user's channel
  // kept) plus what arrives live; what is read is kept per user, shared by the tabs.
  const items = [];
  const readKey = `overtone-demo:read:${me.id}`;
  const readIds = () => new Set(JSON.parse(localStorage.getItem(readKey) ?? '[]'));
  let counts = null; // the badges' unread counts, once the SDK has them
  const bell = $('bell');
  const panel = $('notifications');
  // Read: marked read here or in another tab, or its category has nothing unread (read with
  // "Mark all read", or counted read by another tab).
  const isRead = (item, read) => read.has(item.id) || (counts !== null && !counts[item.category]);

  function markRead(ids) {
    // The newest 200 read ids are enough: older notifications have left the server's list.
    const read = [...new Set([...ids, ...readIds()])].slice(0, 200);
    localStorage.setItem(readKey, JSON.stringify(read));
  }

  /** Adds a notification unless listed; call them oldest first (the newest of a millisecond
   * ends up first). */
  function add(notification) {
    if (items.some((item) => item.id === notification.id)) return;
    items.unshift(notification);
    items.sort((a, b) => b.at - a.at);
  }

  function renderBadge(newCounts) {
    counts = newCounts;
    const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
    $('badge').hidden = total === 0;
    $('badge').textContent = total > 99 ? '99+' : String(total);
    bell.setAttribute('aria-label', `Notifications, ${total === 0 ? 'none' : total} unread`);
    renderList();
  }

  function renderList() {
    const list = $('notification-list');
    const read = readIds();
    list.replaceChildren();
    $('no-notifications').hidden = items.length > 0;
    for (const item of items) {
      const row = el('li', isRead(item, read) ? 'notification read' : 'notification');
      row.dataset.id = item.id;
      const body = el('div', 'notification-body');
      body.append(el('p', '', item.text), timeElement(item.at));
      row.append(body);
      if (!isRead(item, read)) {
        const mark = el('button', 'link-button', 'Mark read');
        mark.type = 'button';
        mark.setAttribute('aria-label', `Mark read: ${item.text}`);
        mark.addEventListener('click', () => {
          markRead([item.id]);
          echo.badges.markRead({ id: item.id });
          renderList();
          // The button is gone: keep focus in the list, on the next one left to read.
          (list.querySelector('.link-button') ?? panel).focus();
        });
        row.append(mark);
      }
      list.append(row);
    }
  }

  const loadList = async () => {
    try {
      const { notifications } = await api('GET', '/demo/api/notifications');
      notifications.forEach(add);
      renderList();
    } catch (error) {
      $('no-notifications').textContent = `Notifications could not be loaded: ${error.message}`;
    }
  };
  echo
    .private(`demo.user.${me.id}`)
    .notification((notification) => {
      add(notification);
      renderList();
    })
    // Every (re)subscription: what the server kept, which a new tab or a reload has not seen.
    .subscribed(loadList);
  echo.badges.onChange(renderBadge);
  addEventListener('storage', (event) => {
    if (event.key === readKey) renderList();
  });

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
  // The path, not `contains`: a click on "Mark read" removes its button before this runs.
  document.addEventListener('click', (event) => {
    if (!panel.hidden && !event.composedPath().includes($('bell-area'))) setOpen(false);
  });
  $('mark-all').addEventListener('click', () => {
    markRead(items.map((item) => item.id));
    echo.badges.markRead('all');
    renderList();
  });
  renderList();
}

const session = savedSession();
if (session?.token && session.user) start(session);
else showSignIn();
