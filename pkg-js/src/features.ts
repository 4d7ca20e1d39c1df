// Typing, online/away status and unread badges: the features module (a second, small wasm,
// client-wasm/src/web_features.rs) and its page side, loaded on first use so that an app using
// only laravel-echo's API never downloads them. The client (client.ts) tells it what it saw;
// it whispers through the client, keeps the badges in localStorage, shares them with the user's
// other tabs over a BroadcastChannel, and calls the app's change callbacks. Numbered as in
// web_features.rs: calls go in as `call(features, op, a, b, c, '', n)`, answers come back as
// `out(features, kind, n, a, b)` (the boundary is the client's: wasm.ts).
import { instantiate, type Call } from './wasm.js';

type Callback = (...args: any[]) => void;

/** client-wasm/src/web_features.rs `op`, in order. */
const enum Op {
  New, PresenceMember, PresenceUp, MemberJoined, MemberLeft, Left, Down, ServerError, Typing,
  StopTyping, TypingUsers, TypingSeen, StatusSeen, Statuses, Status, Notification, BadgeCount,
  BadgeCounts, MarkRead, BadgesRemote, Visibility, Timer,
}

/** client-wasm/src/web_features.rs `Out`, in order. */
const enum Out {
  Whisper, Changed, StoreBadges, PostBadges, Timer, Item,
}

const WATCHED = ['typing', 'status', 'badges'];
/** The whispers the typing and status machines send (client events `client-{name}`). */
const WHISPERS = ['typing', 'overtone-status'];

type Item = [number, string, string];

const all: Features[] = [];
let call: Call;

/** The options and the client's side of the features. */
export interface Host {
  /** Tabs with the same scope share their badges. */
  badgeScope: string;
  awayAfterMs?: number;
  whisper(channel: string, event: string, json: string): void;
  info(channel: string, user: string): [boolean, unknown];
}

/** Loads the features module (once), then makes this client's features. */
export async function start(host: Host): Promise<Features> {
  call ??= await instantiate(new URL('overtone_features_bg.wasm', import.meta.url), (index, kind, n, a, b) =>
    all[index].out(kind, n, a, b),
  );
  return new Features(host);
}

export class Features {
  private readonly index: number;
  private readonly storageKey: string;
  private readonly tabs?: BroadcastChannel;
  private timer?: ReturnType<typeof setTimeout>;
  private readonly watchers = new Map<number, [string, string, Callback]>();
  private nextWatcher = 0;
  private items: Item[] = [];

  constructor(private readonly host: Host) {
    this.storageKey = `overtone-badges:${host.badgeScope}`;
    let stored: string | null = null;
    try {
      stored = localStorage.getItem(this.storageKey);
    } catch {
      // Disabled storage: the badges still work for this page's life.
    }
    this.index = call(0, Op.New, stored ?? '', document.hidden ? '1' : '', String(host.awayAfterMs ?? ''), '', -1);
    all[this.index] = this;
    if (typeof BroadcastChannel === 'function') {
      this.tabs = new BroadcastChannel(this.storageKey);
      this.tabs.onmessage = (event) => typeof event.data === 'string' && this.run(Op.BadgesRemote, event.data);
    }
    document.addEventListener('visibilitychange', () => this.run(Op.Visibility, '', '', '', document.hidden ? 0 : 1));
  }

  private run(op: Op, a = '', b = '', c = '', n = -1): number {
    return call(this.index, op, a, b, c, '', n);
  }

  private query(op: Op, a = '', b = ''): Item[] {
    const outer = this.items;
    const items: Item[] = (this.items = []);
    this.run(op, a, b);
    this.items = outer;
    return items;
  }

  out(kind: Out, n: number, a: string, b: string): void {
    switch (kind) {
      case Out.Whisper:
        return this.host.whisper(a, WHISPERS[n], b);
      case Out.Changed:
        return this.changed(WATCHED[n], a);
      case Out.StoreBadges:
        try {
          localStorage.setItem(this.storageKey, a);
        } catch {
          // Full or disabled storage: the badges still work for this page's life.
        }
        return;
      case Out.PostBadges:
        return this.tabs?.postMessage(a);
      case Out.Timer:
        clearTimeout(this.timer);
        if (n >= 0) this.timer = setTimeout(() => this.run(Op.Timer), n);
        return;
      case Out.Item:
        this.items.push([n, a, b]);
        return;
    }
  }

  /** Calls the callbacks watching `what` (on `channel`) with its new state. */
  changed(what: string, channel: string): void {
    for (const [watched, on, callback] of this.watchers.values()) {
      if (watched !== what || (what !== 'badges' && on !== channel)) continue;
      const value = what === 'typing' ? this.typingUsers(channel) : what === 'status' ? this.statuses(channel) : this.badgeCounts();
      try {
        callback(value);
      } catch (error) {
        console.error(error);
      }
    }
  }

  /** A presence subscription was confirmed with these members; `own` is this user's id. */
  presenceUp(channel: string, own: string, members: Iterable<string>): void {
    for (const user of members) this.run(Op.PresenceMember, user);
    this.run(Op.PresenceUp, channel, own);
  }

  memberJoined(channel: string, user: string): void {
    this.run(Op.MemberJoined, channel, user);
  }

  memberLeft(channel: string, user: string): void {
    this.run(Op.MemberLeft, channel, user);
  }

  left(channel: string): void {
    this.run(Op.Left, channel);
  }

  /** The connection went down. */
  down(): void {
    this.run(Op.Down);
  }

  /** A `pusher:error`'s message: client events may be refused for good. */
  serverError(message: string): void {
    this.run(Op.ServerError, message);
  }

  /** A keystroke by this user (`own`) on `channel`. */
  typing(channel: string, own: string): void {
    this.run(Op.Typing, channel, own);
  }

  stopTyping(channel: string, own: string): void {
    this.run(Op.StopTyping, channel, own);
  }

  typingSeen(channel: string, user: string, typing: boolean): void {
    this.run(Op.TypingSeen, channel, user, '', typing ? 1 : 0);
  }

  statusSeen(channel: string, user: string, status: string): void {
    this.run(Op.StatusSeen, channel, user, status);
  }

  notification(id: string, category: string): void {
    this.run(Op.Notification, id, category);
  }

  badgeCount(category: string, count: number): void {
    this.run(Op.BadgeCount, category, '', '', count);
  }

  /** `kind`: `id`, `category` or `all`. */
  markRead(kind: string, value: string): void {
    this.run(Op.MarkRead, kind, value);
  }

  /** Who is typing on `channel`, in the order they started, with `info` on presence channels. */
  typingUsers(channel: string, own = ''): { id: string; info?: unknown }[] {
    return this.query(Op.TypingUsers, channel, own).map(([, id]) => {
      const [known, info] = this.host.info(channel, id);
      return known ? { id, info } : { id };
    });
  }

  statuses(channel: string): Record<string, string> {
    return Object.fromEntries(this.query(Op.Statuses, channel).map(([, user, status]) => [user, status]));
  }

  status(channel: string, user?: string): string | undefined {
    return ['online', 'away'][this.run(Op.Status, channel, user ?? '')];
  }

  badgeCounts(): Record<string, number> {
    return Object.fromEntries(this.query(Op.BadgeCounts).map(([n, category]) => [category, n]));
  }

  watch(what: string, channel: string, callback: Callback, own: string): number {
    // Typing is followed from the first look on.
    if (what === 'typing') this.query(Op.TypingUsers, channel, own);
    this.watchers.set(this.nextWatcher, [what, channel, callback]);
    return this.nextWatcher++;
  }

  unwatch(watcher: number): void {
    this.watchers.delete(watcher);
  }
}
