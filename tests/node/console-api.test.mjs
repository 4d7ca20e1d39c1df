// The console's API on a two-node cluster: the charts' figures are the cluster's (connections
// and API requests on either node, summed, from both nodes), Redis's link is reported, a
// presence member on the other node shows with its user info, and bad input gets a JSON 4xx.
// The counters are the ones /metrics serves.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  startRedis, startCluster, serverSdk, clientOptions, signedClientOptions, connected, once,
} from '../lib/server.mjs';
import { retryUntil } from '../lib/browser.mjs';

const TOKEN = 'console-token-for-the-tests';
let redis;
let nodes = [];
const clients = [];
before(async () => {
  redis = await startRedis();
  nodes = await startCluster(redis, 2, { args: ['--console', '--console-token', TOKEN, '--metrics-token', TOKEN] });
});
after(async () => {
  clients.forEach((c) => c.disconnect());
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

async function api(node, path, options = {}) {
  const response = await fetch(`${node.url}/console/api/${path}`, {
    ...options,
    headers: { Authorization: `Bearer ${TOKEN}`, ...options.headers },
  });
  return { status: response.status, body: await response.json() };
}

/** The newest sample of `node`'s series, as an object. */
async function latest(node) {
  const { body } = await api(node, 'series');
  const row = body.samples.at(-1);
  return row && Object.fromEntries(body.fields.map((f, i) => [f, row[i]]));
}

test('the series sums every node of the cluster', async () => {
  const [a, b] = nodes;
  for (const [node, count] of [[a, 3], [b, 2]]) {
    for (let i = 0; i < count; i++) {
      const c = new Pusher(node.app.key, clientOptions(node));
      clients.push(c);
      await connected(c);
    }
  }
  const before = await latest(a);
  const sdk = await serverSdk(b);
  await sdk.trigger('console-cluster', 'ping', {});
  // An unsigned request: refused, and counted as an error.
  assert.equal((await fetch(`${b.url}/apps/test-app/channels`)).status, 401);
  let sample;
  await retryUntil(
    async () => { sample = await latest(a); },
    async () => sample?.connections === 5 && sample.api_requests >= before.api_requests + 2,
    { ms: 15000, what: 'five connections and two API requests, cluster-wide' },
  );
  assert.equal(sample.nodes, 2);
  assert.equal(sample.redis, true);
  assert.ok(sample.api_errors >= before.api_errors + 1);

  const metrics = await (await fetch(`${b.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
  assert.match(metrics, /^overtone_api_requests_total [1-9]/m);
  assert.match(metrics, /^overtone_api_errors_total [1-9]/m);
  assert.match(metrics, /^overtone_webhooks_delivered_total\{app="test-app"\} 0$/m);
});

test("a presence member on another node shows with its user info", async () => {
  const [a, b] = nodes;
  const sdk = await serverSdk(b);
  const bob = new Pusher(b.app.key, signedClientOptions(b, sdk, { user: { id: 'bob', info: { name: 'Bob' } } }));
  clients.push(bob);
  const room = bob.subscribe('presence-console-cluster');
  await once((cb) => room.bind('pusher:subscription_succeeded', cb), 5000, 'presence subscription');
  let view;
  await retryUntil(
    async () => { view = await api(a, 'apps/test-app/channels/presence-console-cluster'); },
    async () => view.status === 200 && view.body.members.length === 1,
    { what: 'the member on the other node' },
  );
  assert.deepEqual(view.body.members, [{ id: 'bob', info: { name: 'Bob' } }]);
  assert.equal(view.body.info.subscription_count, 1);
  assert.equal(view.body.info.user_count, 1);
});

test('bad input is a JSON 4xx', async () => {
  const [a] = nodes;
  const post = (path, body) => api(a, path, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
  const cases = [
    [await api(a, 'apps/nope/channels'), 404, /Unknown app/],
    [await api(a, 'apps/test-app/channels/bad%20name'), 400, /Channel name/],
    [await post('apps/test-app/events', 'not json'), 400, /Invalid JSON/],
    [await post('apps/test-app/events', JSON.stringify({ name: 'x', data: {} })), 400, /at least one channel/],
    [await api(a, 'series?after=soon'), 400, /after/],
  ];
  for (const [{ status, body }, expected, message] of cases) {
    assert.equal(status, expected);
    assert.match(body.error, message);
  }
});
