// Loads one of the package's wasm modules (the client, or the features module) and speaks its
// boundary, client-wasm/src/abi.rs: strings go in as UTF-8 written into the module's input
// buffer, `out` records come back with two strings read out of its memory. Every event crosses
// it, so the common case (short ASCII strings, many of them empty) is kept cheap. Where the
// .wasm cannot be instantiated, the same module compiled to JavaScript (wasm2js) takes its place
// behind the same boundary.

/** `call(client, op, a, b, c, d, n)` of a loaded module. */
export type Call = (client: number, op: number, a: string, b: string, c: string, d: string, n: number) => number;
/** Imports the module as JavaScript: its default export instantiates it with the imports. */
export type Fallback = () => Promise<{ default: (imports: object) => any }>;
/** What the page does with an `out` record. */
export type OutFn = (client: number, kind: number, n: number, a: string, b: string) => void;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Whether this runtime can compile WebAssembly: not where it has none, nor on a page whose
 * Content-Security-Policy lacks 'wasm-unsafe-eval' (an empty module tells, before any download).
 */
export function mayCompile(): boolean {
  try {
    return !!new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
  } catch {
    return false;
  }
}

/**
 * Fetches and instantiates the module at `url` (or, where WebAssembly cannot run, its JavaScript
 * twin from `fallback`); its `out` records go to `out`.
 */
export async function instantiate(url: URL, fallback: Fallback, out: OutFn): Promise<Call> {
  let memory: { buffer: ArrayBuffer };
  let view = new Uint8Array(0);
  // A new view only when the memory grew (which replaces its buffer).
  const bytes = () => (view.buffer === memory.buffer ? view : (view = new Uint8Array(memory.buffer)));
  const text = (at: number, length: number) => (length ? decoder.decode(bytes().subarray(at, at + length)) : '');
  /** Writes `s` at `at`; returns its length in bytes. */
  const put = (s: string, at: number): number => {
    const mem = bytes();
    for (let i = 0; i < s.length; i++) {
      const unit = s.charCodeAt(i);
      if (unit > 127) return i + encoder.encodeInto(s.slice(i), mem.subarray(at + i)).written!;
      mem[at + i] = unit;
    }
    return s.length;
  };
  const imports = {
    o: {
      o: (client: number, kind: number, n: number, a: number, aLength: number, b: number, bLength: number) =>
        out(client, kind, n, text(a, aLength), text(b, bLength)),
      t: () => performance.now(),
    },
  };
  let exports: any;
  if (mayCompile()) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    exports = (await WebAssembly.instantiate(await response.arrayBuffer(), imports)).instance.exports;
  }
  exports ??= (await fallback()).default(imports);
  memory = exports.memory;
  return (client, op, a, b, c, d, n) => {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    let at: number = exports.b((a.length + b.length + c.length + d.length) * 3);
    const aLength = put(a, at);
    const bLength = put(b, (at += aLength));
    const cLength = put(c, (at += bLength));
    const dLength = put(d, at + cLength);
    return exports.c(client, op, aLength, bLength, cLength, dLength, n);
  };
}
