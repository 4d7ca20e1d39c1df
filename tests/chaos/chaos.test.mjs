// The fault-injection suite: seeded runs of ./run.mjs. Short by default (scripts/test runs
// seeds 1 and 2, three faults each); by hand, e.g.
//   CHAOS_SEEDS=1-20 CHAOS_FAULTS=6 node --test chaos/
// A failing seed is named in the failure; run it alone to see the same faults again.
import { test } from 'node:test';
import { runChaos } from './run.mjs';

function seeds(spec = '1,2') {
  return spec.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number);
    return to === undefined ? [from] : Array.from({ length: to - from + 1 }, (_, k) => from + k);
  });
}

const faults = Number(process.env.CHAOS_FAULTS ?? 3);
for (const seed of seeds(process.env.CHAOS_SEEDS)) {
  test(`chaos seed ${seed}: ${faults} faults, then every invariant`, { timeout: 120_000 }, async () => {
    const summary = await runChaos({ seed, faults });
    console.log(`# chaos ${JSON.stringify(summary)}`);
  });
}
