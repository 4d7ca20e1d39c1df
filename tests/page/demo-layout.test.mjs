// The demo's layout on a phone and on a desktop (issue #19): from 360 px wide no sideways
// scrolling of the page, every target at least 24x24 px, the bell's list inside the viewport,
// a cue when the seat map scrolls; your held and your bought seats told apart (and in the
// legend), an h1 once signed in, one time format. Two people in two contexts; screenshots of
// both views go to tests/artifacts/ for a person to look at.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { DESKTOP, artifact, until, openDemo, send, shows, badgeIs } from '../lib/demo-page.mjs';

const screenshot = (page, name, options = {}) => page.screenshot({ path: artifact(name), ...options });

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** What a page shows that breaks a phone layout, as a list of sentences (empty: nothing). */
function layoutProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const { innerWidth, innerHeight } = window;
    if (document.documentElement.scrollWidth > innerWidth) {
      problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${innerWidth}`);
    }
    const targets = document.querySelectorAll('button, a[href], input, select, textarea, [role="button"]');
    for (const target of targets) {
      const box = target.getBoundingClientRect();
      const shown = target.getClientRects().length > 0 && getComputedStyle(target).visibility !== 'hidden';
      // The skip link sits off screen until focused (then it is big enough: checked below).
      if (!shown || target.classList.contains('skip')) continue;
      if (box.width < 24 || box.height < 24) {
        const name = target.getAttribute('aria-label') ?? target.dataset.seat ?? target.textContent.trim() ?? target.id;
        problems.push(`${target.tagName.toLowerCase()} "${name}" is ${box.width.toFixed(1)}x${box.height.toFixed(1)}`);
      }
    }
    const dropdown = document.querySelector('#notifications');
    if (!dropdown.hidden) {
      const box = dropdown.getBoundingClientRect();
      if (box.left < 0 || box.right > innerWidth || box.bottom > innerHeight) {
        problems.push(`the notifications list is outside the viewport: ${JSON.stringify(box)}`);
      }
    }
    const map = document.querySelector('#seat-map');
    const cue = document.querySelector('#seat-scroll-hint');
    if (map.scrollWidth > map.clientWidth && !(cue && cue.getClientRects().length > 0)) {
      problems.push('the seat map scrolls sideways with no cue');
    }
    return problems;
  });
}

/**
 * Two people on a server of their own: `kim` at `viewport` holds one seat, has bought another
 * and was mentioned by Lea.
 */
async function kimAndLea(viewport) {
  const server = await startServer({ demo: {} });
  const kimContext = await browser.newContext({ viewport, isMobile: viewport.width < 500, hasTouch: viewport.width < 500 });
  const leaContext = await browser.newContext({ viewport: DESKTOP });
  const kim = await openDemo(kimContext, server, 'Kim', { typed: true });
  const lea = await openDemo(leaContext, server, 'Lea', { typed: true });
  await send(kim, 'hi, I am on my phone');
  await shows(lea, 'hi, I am on my phone');
  await send(lea, '@kim the front rows are open');
  await badgeIs(kim, 1);
  await kim.locator('[data-seat="A2"]').click();
  await until(kim, () => document.querySelector('[data-seat="A2"]').dataset.holder === 'kim');
  await kim.getByRole('button', { name: 'Buy' }).click();
  await until(kim, () => document.querySelector('[data-seat="A2"]').dataset.state === 'sold');
  await kim.locator('[data-seat="A3"]').click();
  await lea.locator('[data-seat="A5"]').click();
  await until(kim, () => document.querySelector('[data-seat="A5"]').dataset.holder === 'lea');
  await until(kim, () => document.querySelector('[data-seat="A3"]').dataset.holder === 'kim');
  const close = async () => {
    await kimContext.close();
    await leaContext.close();
    await server.stop();
  };
  return { kim, lea, close };
}

for (const viewport of [{ width: 360, height: 740 }, { width: 390, height: 844 }]) {
  test(`5. on a ${viewport.width}x${viewport.height} phone: no sideways page, 24 px targets, the bell's list on screen`, async () => {
    const { kim, lea, close } = await kimAndLea(viewport);
    try {
      assert.deepEqual(await layoutProblems(kim), []);
      // The top bar stays one line: the list opens just under it.
      assert.ok((await kim.locator('.topbar').boundingBox()).height < 60);
      await kim.locator('#bell').click();
      await kim.locator('#notification-list li').first().waitFor();
      assert.deepEqual(await layoutProblems(kim), []);
      if (viewport.width === 390) {
        await screenshot(kim, 'phone-bell');
        await kim.keyboard.press('Escape');
        await kim.evaluate(() => scrollTo(0, 0));
        await screenshot(kim, 'phone', { fullPage: true });
      }
      // The skip link, once focused, is a target like the others.
      await kim.keyboard.press('Escape');
      await kim.locator('.skip').focus();
      const skip = await kim.locator('.skip').boundingBox();
      assert.ok(skip.width >= 24 && skip.height >= 24 && skip.x >= 0, JSON.stringify(skip));
      assert.deepEqual([...kim.problems, ...lea.problems], []);
    } finally {
      await close();
    }
  });
}

/** WCAG's contrast ratio of two `rgb(...)` colours. */
function contrast(a, b) {
  const luminance = (rgb) => {
    const [r, g, b] = rgb.match(/\d+/g).slice(0, 3).map((c) => {
      const s = Number(c) / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

test('on a desktop: your held and bought seats differ and are in the legend, an h1, chat and bell tell time alike', async () => {
  const { kim, lea, close } = await kimAndLea(DESKTOP);
  try {
    assert.deepEqual(await layoutProblems(kim), []);
    const background = (seat) => kim.locator(`[data-seat="${seat}"]`).evaluate((b) => getComputedStyle(b).backgroundColor);
    const [held, bought] = [await background('A3'), await background('A2')];
    assert.ok(contrast(held, bought) >= 3, `held ${held} vs bought ${bought}: ${contrast(held, bought).toFixed(2)}:1`);
    const legend = await kim.locator('.legend li').allTextContents();
    assert.deepEqual(legend, ['Free', 'Held by you', 'Bought by you', 'Held by someone', 'Sold']);
    const h1 = kim.getByRole('heading', { level: 1 });
    assert.equal(await h1.count(), 1);
    assert.match(await h1.textContent(), /Overtone/);

    const timeFormat = /^\d{1,2}:\d{2}( ?[AP]M)?$/;
    const chatTime = await kim.locator('#messages time').first().textContent();
    await kim.locator('#bell').click();
    const bellTime = await kim.locator('#notification-list time').first().textContent();
    assert.match(chatTime, timeFormat);
    assert.match(bellTime, timeFormat);
    await screenshot(kim, 'desktop');
    assert.deepEqual([...kim.problems, ...lea.problems], []);
  } finally {
    await close();
  }
});
