// A stand-in for overtone's Echo class with the typing, status, read-receipt and badge feeds
// the bindings use, driven by the test through window.fake: it checks the bindings' side (what they read,
// re-render and release) apart from the real class.
const channels = new Map();
const calls = [];
const badgeCounts = {};
const badgeListeners = new Set();

class FakeChannel {
  constructor(name) {
    this.name = name;
    this.typists = [];
    this.statusMap = {};
    this.details = undefined;
    this.readState = { readers: {}, unread: 0 };
    this.typingListeners = new Set();
    this.statusListeners = new Set();
    this.readListeners = new Set();
  }
  typing() { calls.push(`typing ${this.name}`); }
  typingUsers() { return this.typists; }
  onTypingChange(callback) {
    this.typingListeners.add(callback);
    return () => this.typingListeners.delete(callback);
  }
  statuses() { return this.statusMap; }
  memberStatuses() { return this.details; }
  onStatusChange(callback) {
    this.statusListeners.add(callback);
    return () => this.statusListeners.delete(callback);
  }
  reads() { return this.readState; }
  markRead(upTo) { calls.push(`markRead ${this.name} ${upTo}`); }
  onReadChange(callback) {
    this.readListeners.add(callback);
    return () => this.readListeners.delete(callback);
  }
}

const subscribe = (name) => {
  calls.push(`subscribe ${name}`);
  const channel = new FakeChannel(name);
  channels.set(name, channel);
  return channel;
};

export default class FakeEcho {
  constructor(options) { this.options = options; }
  channel(name) { return subscribe(name); }
  private(name) { return subscribe(`private-${name}`); }
  join(name) { return subscribe(`presence-${name}`); }
  leave(name) { calls.push(`leave ${name}`); }
  leaveChannel(name) { calls.push(`leaveChannel ${name}`); }
  setStatus(status, message) { calls.push(`setStatus ${status} ${message}`); }
  badges = {
    count: (category) => badgeCounts[category] ?? 0,
    total: () => Object.values(badgeCounts).reduce((sum, n) => sum + n, 0),
    markRead: (category) => calls.push(`markRead ${category}`),
    onChange: (callback) => {
      badgeListeners.add(callback);
      return () => badgeListeners.delete(callback);
    },
  };
}

window.fake = {
  calls,
  setTyping(name, users) {
    const channel = channels.get(name);
    channel.typists = users;
    channel.typingListeners.forEach((callback) => callback());
  },
  setStatuses(name, statuses) {
    const channel = channels.get(name);
    channel.statusMap = statuses;
    channel.statusListeners.forEach((callback) => callback());
  },
  setDetails(name, details) {
    const channel = channels.get(name);
    channel.details = details;
    channel.statusListeners.forEach((callback) => callback());
  },
  setReads(name, state) {
    const channel = channels.get(name);
    channel.readState = state;
    channel.readListeners.forEach((callback) => callback());
  },
  setBadge(category, count) {
    badgeCounts[category] = count;
    badgeListeners.forEach((callback) => callback());
  },
  /** Change callbacks still registered: zero once every component has unmounted. */
  listeners: () =>
    badgeListeners.size +
    [...channels.values()].reduce((n, c) => n + c.typingListeners.size + c.statusListeners.size + c.readListeners.size, 0),
};
