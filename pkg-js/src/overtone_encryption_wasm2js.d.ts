// The .wasm compiled to JavaScript (built by scripts/lib.sh, placed next to the entries by build.mjs).
export default function instantiate(imports: object): any;
