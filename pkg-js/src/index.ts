// Overtone's JavaScript entry: an Echo-compatible class over the Rust/wasm client.
import init, { Connection } from '../wasm/overtone.js';

export interface EchoOptions {
  broadcaster?: 'reverb' | 'pusher';
  key: string;
  wsHost?: string;
  wsPort?: number;
  wssPort?: number;
  forceTLS?: boolean;
  namespace?: string | false;
}

type Listener = (data: unknown) => void;

let wasmReady: Promise<unknown> | undefined;

/** Loads the wasm module once, on first use (never at import, so SSR can import us). */
function loadWasm(): Promise<unknown> {
  return (wasmReady ??= init());
}

/** Echo's event-name rule: a leading `.` or `\` means as written; else namespace + `\` for `.`. */
function formatEventName(event: string, namespace: string | false): string {
  if (event.startsWith('.') || event.startsWith('\\')) return event.slice(1);
  const full = namespace ? `${namespace}.${event}` : event;
  return full.replace(/\./g, '\\');
}

export class Channel {
  constructor(
    private readonly echo: Echo,
    readonly name: string,
  ) {}

  listen(event: string, callback: Listener): this {
    const name = formatEventName(event, this.echo.options.namespace ?? 'App.Events');
    void this.echo.connection().then((c) => c.bind(this.name, name, callback));
    return this;
  }
}

export default class Echo {
  readonly options: EchoOptions;
  private conn?: Promise<Connection>;
  private readonly channels = new Map<string, Channel>();

  constructor(options: EchoOptions) {
    this.options = options;
  }

  /** The live connection, opened on first use. */
  connection(): Promise<Connection> {
    return (this.conn ??= loadWasm().then(() => new Connection(this.url())));
  }

  channel(name: string): Channel {
    let channel = this.channels.get(name);
    if (!channel) {
      channel = new Channel(this, name);
      this.channels.set(name, channel);
      void this.connection().then((c) => c.subscribe(name));
    }
    return channel;
  }

  disconnect(): void {
    void this.conn?.then((c) => c.disconnect());
  }

  private url(): string {
    const { key, wsHost, wsPort, wssPort, forceTLS } = this.options;
    const tls = forceTLS ?? location.protocol === 'https:';
    const host = wsHost ?? location.hostname;
    const port = (tls ? wssPort : wsPort) ?? (tls ? 443 : 80);
    return `${tls ? 'wss' : 'ws'}://${host}:${port}/app/${key}?protocol=7&client=overtone&version=0.1.0&flash=false`;
  }
}

export { Echo };
