// The demo site as its visitors use it, for the demo's page tests: one browser context per
// person, signing in, chatting, waiting for what the other person's page shows.
import { before, after } from 'node:test';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launchBrowser, strictPage } from './browser.mjs';

/** The desktop size the demo tests use unless they test a phone. */
export const DESKTOP = { width: 1280, height: 900 };

/**
 * The file's server with the demo and its browser, started before its tests and stopped after
 * them; `newVisitor()` is a new browser context (its own storage: another person) at desktop size.
 */
export function demoSuite() {
  const suite = {
    server: undefined,
    browser: undefined,
    newVisitor: () => suite.browser.newContext({ viewport: DESKTOP }),
  };
  before(async () => {
    suite.server = await startServer({ demo: {} });
    suite.browser = await launchBrowser();
  });
  after(async () => {
    await suite.browser?.close();
    await suite.server?.stop();
  });
  return suite;
}

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../artifacts');

/** Where a screenshot named `name` goes: tests/artifacts/, for a person to look at. */
export function artifact(name) {
  mkdirSync(artifacts, { recursive: true });
  return path.join(artifacts, `demo-${name}.png`);
}

/** Waits (5 s unless told) until `fn(arg)` is truthy in the page. */
export const until = (page, fn, arg, timeout = 5000) => page.waitForFunction(fn, arg, { timeout, polling: 50 });

/**
 * Opens the demo served at `at` in `context`; signs in as `name` (a demo user's button, or typed
 * when `typed`) unless the context already is someone. Resolves once the seat map is loaded.
 */
export async function openDemo(context, at, name, { typed = false } = {}) {
  const page = await strictPage(context);
  // A short away threshold (the page's `away` parameter) so tests need not wait 30 s.
  await page.goto(`${at.url}/?away=300`);
  if (name && typed) {
    await page.getByLabel('Or type a name').fill(name);
    await page.getByLabel('Or type a name').press('Enter');
  } else if (name) {
    await page.getByRole('button', { name, exact: true }).click();
  }
  await page.locator('#seat-map[data-ready="true"]').waitFor();
  return page;
}

/** Waits until the chat's member list shows exactly `ids`. */
export function membersAre(page, ids) {
  return until(page, (ids) => {
    const shown = [...document.querySelectorAll('#members li')].map((li) => li.dataset.user).sort();
    return JSON.stringify(shown) === JSON.stringify([...ids].sort());
  }, ids);
}

/** Types `text` into the chat and presses Enter. */
export async function send(page, text) {
  await page.locator('#chat-input').fill(text);
  await page.locator('#chat-input').press('Enter');
}

/** The texts of the chat's messages, in order. */
export const messageTexts = (page) => page.locator('#messages .text').allTextContents();

/** Waits until the page shows a message with exactly `text`. */
export const shows = (page, text) =>
  until(page, (text) => [...document.querySelectorAll('#messages .text')].some((p) => p.textContent === text), text);

/** Waits until the bell's badge shows `count` (a number; 0: hidden). */
export const badgeIs = (page, count) =>
  until(page, (count) => {
    const badge = document.querySelector('#badge');
    return count === 0 ? badge.hidden : !badge.hidden && badge.textContent === String(count);
  }, count);

/** Waits until the connection indicator says `state` (10 s: a restart takes a few retries). */
export const connectionIs = (page, state) =>
  until(page, (state) => document.querySelector('#connection').dataset.state === state, state, 15000);

/** The page's problems but the browser's own logs of failed connections while a server is down. */
export const problemsButOutage = (page) => page.problems.filter((p) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(p));
