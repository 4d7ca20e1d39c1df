// Loads one of the package's wasm modules (the client, or the features module) and speaks its
// boundary, client-wasm/src/abi.rs: strings go in as UTF-8 written into the module's input
// buffer, `out` records come back with two strings read out of its memory.

/** `call(client, op, a, b, c, d, n)` of a loaded module. */
export type Call = (client: number, op: number, a: string, b: string, c: string, d: string, n: number) => number;
/** What the page does with an `out` record. */
export type OutFn = (client: number, kind: number, n: number, a: string, b: string) => void;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Fetches and instantiates the module at `url`; its `out` records go to `out`. */
export async function instantiate(url: URL, out: OutFn): Promise<Call> {
  let memory: WebAssembly.Memory;
  const text = (at: number, length: number) => decoder.decode(new Uint8Array(memory.buffer, at, length));
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  const { instance } = await WebAssembly.instantiate(await response.arrayBuffer(), {
    o: {
      o: (client: number, kind: number, n: number, a: number, aLength: number, b: number, bLength: number) =>
        out(client, kind, n, text(a, aLength), text(b, bLength)),
      t: () => performance.now(),
    },
  });
  const exports = instance.exports as any;
  memory = exports.memory;
  return (client, op, ...args) => {
    const n = args.pop() as number;
    const strings = args as string[];
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    let at: number = exports.b(strings.reduce((sum, s) => sum + s.length * 3, 0));
    const bytes = new Uint8Array(memory.buffer);
    const lengths = strings.map((s) => {
      const { written } = encoder.encodeInto(s, bytes.subarray(at));
      at += written!;
      return written;
    });
    return exports.c(client, op, ...lengths, n);
  };
}
