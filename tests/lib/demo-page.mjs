// The demo site as its visitors use it, for the demo's page tests: one browser context per
// person, signing in, chatting, waiting for what the other person's page shows.
import { strictPage } from './browser.mjs';

/** The desktop size the demo tests use unless they test a phone. */
export const DESKTOP = { width: 1280, height: 900 };

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
