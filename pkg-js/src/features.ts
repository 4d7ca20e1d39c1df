// Typing, presence statuses, read receipts and unread badges: the features module (a second,
// small wasm, client-wasm/src/web_features.rs) and its page side, loaded on first use so that an
// app using only laravel-echo's API never downloads them. The client (client.ts) tells it what
// it saw; it whispers and sends `overtone:*` frames through the client, keeps the badges in
// localStorage, shares them with the user's other tabs over a BroadcastChannel, and calls the
// app's change callbacks. Numbered as in web_features.rs: calls go in as
// `call(features, op, a, b, c, d, n)`, answers come back as `out(features, kind, n, a, b)` (the
// boundary is the client's: wasm.ts).
// The loader comes from the client (`start`'s `load`), not imported: importing it here would
// split it into a chunk of its own that every app downloads next to the entry.
import type { Call, instantiate } from './wasm.js';
import type { PresenceDetails, ReadState } from './types.js';

type Callback = (...args: any[]) => void;

/** client-wasm/src/web_features.rs `op`, in order. */
const enum Op {
  New, PresenceMember, PresenceUp, MemberJoined, MemberLeft, Left, Down, ServerError, Typing,
  StopTyping, TypingUsers, TypingSeen, StatusSeen, Statuses, Status, Notification, BadgeCount,
  BadgeCounts, MarkRead, BadgesRemote, Visibility, Timer, Established, Subscribed, ReadEvent,
  ReadsSeen, MarkChannelRead, Readers, ReadUpTo, ReadMarkers, Unread, SetStatus, MemberDetail,
  LeftBefore, MemberStatuses, SignedIn,
}

/** client-wasm/src/web_features.rs `Out`, in order. */
const enum Out {
  Whisper, Changed, StoreBadges, PostBadges, Timer, Item, Send,
}

const WATCHED = ['typing', 'status', 'badges', 'reads'];
/** The whispers the typing and status machines send (client events `client-{name}`). */
const WHISPERS = ['typing', 'overtone-status'];

type Item = [number, string, string];

/** `mobile` on phones and tablets (the browser's own hint, else its user agent), else `desktop`. */
function detectDevice(): string {
  const nav = globalThis.navigator as any;
  return nav?.userAgentData?.mobile ?? /Mobi|Android|iPhone|iPad/.test(nav?.userAgent ?? '') ? 'mobile' : 'desktop';
}

/** A number of ms since the epoch from the server, or -1. */
const time = (value: unknown): number => (typeof value === 'number' && value >= 0 ? value : -1);
const text = (value: unknown): string => (typeof value === 'string' ? value : '');

const all: Features[] = [];
let call: Call;

/** The options and the client's side of the features. */
export interface Host {
  /** Tabs with the same scope share their badges. */
  badgeScope: string;
  awayAfterMs?: number;
  /** Whether the client's pages are hidden, where no `document` says it (the shared connection's worker). */
  hidden?: boolean;
  whisper(channel: string, event: string, json: string): void;
  /** Sends a frame on the socket, if connected. */
  send(frame: string): void;
  info(channel: string, user: string): [boolean, unknown];
  /** `desktop` or `mobile`, as others see this client (default: detected). */
  device?: string;
  /** Where the module's .wasm is, when not next to this file. */
  featuresWasm?: string;
}

/** Loads the features module (once), then makes this client's features. */
export async function start(host: Host, load: typeof instantiate): Promise<Features> {
  const fallback = () => import('./overtone_features_wasm2js.js');
  const url = host.featuresWasm ? new URL(host.featuresWasm) : new URL('overtone_features_bg.wasm', import.meta.url);
  call ??= await load(url, fallback, (index, kind, n, a, b) =>
    all[index].out(kind, n, a, b),
  );
  return new Features(host);
}

export class Features {
  private readonly index_: number;
  private readonly storageKey_: string;
  private readonly tabs_?: BroadcastChannel;
  private timer_?: ReturnType<typeof setTimeout>;
  private readonly watchers_ = new Map<number, [string, string, Callback]>();
  private nextWatcher_ = 0;
  private items_: Item[] = [];

  constructor(private readonly host_: Host) {
    this.storageKey_ = `overtone-badges:${this.host_.badgeScope}`;
    let stored: string | null = null;
    try {
      stored = localStorage.getItem(this.storageKey_);
    } catch {
      // Disabled storage: the badges still work for this page's life.
    }
    this.index_ = call(0, Op.New, stored ?? '', (this.host_.hidden ?? globalThis.document?.hidden) ? '1' : '', String(this.host_.awayAfterMs ?? ''), this.host_.device ?? detectDevice(), -1);
    all[this.index_] = this;
    if (typeof BroadcastChannel === 'function') {
      this.tabs_ = new BroadcastChannel(this.storageKey_);
      this.tabs_.onmessage = (event) => typeof event.data === 'string' && this.run_(Op.BadgesRemote, event.data);
    }
    globalThis.document?.addEventListener('visibilitychange', () => this.run_(Op.Visibility, '', '', '', '', document.hidden ? 0 : 1));
  }

  private run_(op: Op, a = '', b = '', c = '', d = '', n = -1): number {
    return call(this.index_, op, a, b, c, d, n);
  }

  private query_(op: Op, a = '', b = ''): Item[] {
    const outer = this.items_;
    const items: Item[] = (this.items_ = []);
    this.run_(op, a, b);
    this.items_ = outer;
    return items;
  }

  out(kind: Out, n: number, a: string, b: string): void {
    switch (kind) {
      case Out.Whisper:
        return this.host_.whisper(a, WHISPERS[n], b);
      case Out.Changed:
        return this.changed(WATCHED[n], a);
      case Out.StoreBadges:
        try {
          localStorage.setItem(this.storageKey_, a);
        } catch {
          // Full or disabled storage: the badges still work for this page's life.
        }
        return;
      case Out.PostBadges:
        return this.tabs_?.postMessage(a);
      case Out.Timer:
        clearTimeout(this.timer_);
        if (n >= 0) this.timer_ = setTimeout(() => this.run_(Op.Timer), n);
        return;
      case Out.Item:
        this.items_.push([n, a, b]);
        return;
      case Out.Send:
        return this.host_.send(a);
    }
  }

  /** Calls the callbacks watching `what` (on `channel`) with its new state. */
  changed(what: string, channel: string): void {
    for (const [watched, on, callback] of this.watchers_.values()) {
      if (watched !== what || (what !== 'badges' && on !== channel)) continue;
      const value =
        what === 'typing' ? this.typingUsers(channel)
        : what === 'status' ? this.statuses(channel)
        : what === 'reads' ? this.readState(channel)
        : this.badgeCounts();
      try {
        callback(value);
      } catch (error) {
        console.error(error);
      }
    }
  }

  /** A presence subscription was confirmed with these members; `own` is this user's id. */
  presenceUp(channel: string, own: string, members: Iterable<string>): void {
    for (const user of members) this.run_(Op.PresenceMember, user);
    this.run_(Op.PresenceUp, channel, own);
  }

  memberJoined(channel: string, user: string): void {
    this.run_(Op.MemberJoined, channel, user);
  }

  /** `lastSeen`: the server's `last_seen_at`, if it said. */
  memberLeft(channel: string, user: string, lastSeen?: unknown): void {
    this.run_(Op.MemberLeft, channel, user, '', '', time(lastSeen) >= 0 ? time(lastSeen) : Date.now());
  }

  left(channel: string): void {
    this.run_(Op.Left, channel);
  }

  /** Set by the shared connection's worker, where no page's `visibilitychange` reaches. */
  visibility(visible: boolean): void {
    this.run_(Op.Visibility, '', '', '', '', +visible);
  }

  /** Connected, to a server carrying these extensions (1 reads + 2 statuses). */
  established(extensions: number): void {
    this.run_(Op.Established, '', '', '', '', extensions);
  }

  /** The user signed in on this connection: reads on private channels can go. */
  signedIn(): void {
    this.run_(Op.SignedIn);
  }

  /**
   * What the client heard of a private or presence channel (`own`: this user's id there):
   * `subscribed` (data: its history position or `''`), `position` (an event's), or an
   * `overtone:*` frame's data (server/README.md, "Wire extensions").
   */
  heard(channel: string, event: string, data: any, own: string): void {
    switch (event) {
      case 'subscribed':
        return void this.run_(Op.Subscribed, channel, data);
      case 'position':
        return void this.run_(Op.ReadEvent, channel, data);
      case 'overtone:reads':
        for (const [user, upTo] of Object.entries(data.reads ?? {})) {
          if (typeof upTo === 'string') this.run_(Op.ReadsSeen, channel, user, upTo, own);
        }
        return;
      case 'overtone:members':
        for (const [user, member] of Object.entries(data.members ?? {})) {
          if (member && typeof member === 'object') this.statusSeen(channel, user, member);
        }
        for (const [user, at] of Object.entries(data.left ?? {})) {
          if (time(at) >= 0) this.run_(Op.LeftBefore, channel, user, '', '', time(at));
        }
        return;
      case 'overtone:member_updated':
        if (data.user_id !== undefined) this.statusSeen(channel, String(data.user_id), data);
    }
  }

  markChannelRead(channel: string, upTo: string): void {
    if (this.run_(Op.MarkChannelRead, channel, upTo) < 0) console.error(`overtone: markRead(${JSON.stringify(upTo)}) on ${channel}: a marker is 1 to 64 bytes`);
  }

  readers(channel: string, upTo: string): string[] {
    return this.query_(Op.Readers, channel, upTo).map(([, user]) => user);
  }

  readState(channel: string): ReadState {
    const readers = Object.fromEntries(this.query_(Op.ReadMarkers, channel).map(([, user, upTo]) => [user, upTo]));
    const [own] = this.query_(Op.ReadUpTo, channel);
    return { readers, own: own?.[1], unread: this.run_(Op.Unread, channel) };
  }

  setStatus(status: string, message: string): void {
    if (this.run_(Op.SetStatus, status, message) < 0) {
      console.error(`overtone: setStatus(${JSON.stringify(status)}): a status is a lowercase word of at most 16 bytes (a-z, 0-9, - or _), a message at most 100 characters`);
    }
  }

  /** A status from `user`: a whisper's data, or the server's `overtone:member_updated` / `overtone:members` entry. */
  statusSeen(channel: string, user: string, data: any): void {
    this.run_(Op.MemberDetail, text(data.device), '', '', '', time(data.away_since));
    this.run_(Op.StatusSeen, channel, user, text(data.status), text(data.message), Date.now());
  }

  memberStatuses(channel: string): PresenceDetails {
    return JSON.parse(this.query_(Op.MemberStatuses, channel)[0][1]);
  }

  /** The connection went down. */
  down(): void {
    this.run_(Op.Down);
  }

  /** A `pusher:error`'s message: client events may be refused for good. */
  serverError(message: string): void {
    this.run_(Op.ServerError, message);
  }

  /** A keystroke by this user (`own`) on `channel`. */
  typing(channel: string, own: string): void {
    this.run_(Op.Typing, channel, own);
  }

  stopTyping(channel: string, own: string): void {
    this.run_(Op.StopTyping, channel, own);
  }

  typingSeen(channel: string, user: string, typing: boolean): void {
    this.run_(Op.TypingSeen, channel, user, '', '', typing ? 1 : 0);
  }

  notification(id: string, category: string): void {
    this.run_(Op.Notification, id, category);
  }

  badgeCount(category: string, count: number): void {
    this.run_(Op.BadgeCount, category, '', '', '', count);
  }

  /** `kind`: `id`, `category` or `all`. */
  markRead(kind: string, value: string): void {
    this.run_(Op.MarkRead, kind, value);
  }

  /** Who is typing on `channel`, in the order they started, with `info` on presence channels. */
  typingUsers(channel: string, own = ''): { id: string; info?: unknown }[] {
    return this.query_(Op.TypingUsers, channel, own).map(([, id]) => {
      const [known, info] = this.host_.info(channel, id);
      return known ? { id, info } : { id };
    });
  }

  statuses(channel: string): Record<string, string> {
    return Object.fromEntries(this.query_(Op.Statuses, channel).map(([, user, status]) => [user, status]));
  }

  status(channel: string, user?: string): string | undefined {
    return ['online', 'away'][this.run_(Op.Status, channel, user ?? '')];
  }

  badgeCounts(): Record<string, number> {
    return Object.fromEntries(this.query_(Op.BadgeCounts).map(([n, category]) => [category, n]));
  }

  watch(what: string, channel: string, callback: Callback, own: string): number {
    // Typing is followed from the first look on.
    if (what === 'typing') this.query_(Op.TypingUsers, channel, own);
    this.watchers_.set(this.nextWatcher_, [what, channel, callback]);
    return this.nextWatcher_++;
  }

  unwatch(watcher: number): void {
    this.watchers_.delete(watcher);
  }
}
