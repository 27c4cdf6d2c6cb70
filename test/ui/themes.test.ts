// Text in the chat panel stays readable in every kind of theme: other
// people's names, inline code and code blocks, and your own messages, each
// measured as rendered (computed colours, backgrounds composited) against the
// WCAG AA ratio of 4.5:1, in a light, a dark and both high-contrast themes.
import * as assert from 'node:assert/strict';
import type { Browser, Frame } from 'playwright-core';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { chooseColorTheme, closeChromium, launchChromium, saveScreenshot, startPerson, type Person } from './harness';
import { chatFrame, eventually, joinThroughPrompts, messageTexts, panelText, sendInPanel } from './panelSteps';

const AA_TEXT_CONTRAST = 4.5;

const THEMES: { label: string; kind: string }[] = [
  { label: 'Light Modern', kind: 'vscode-light' },
  { label: 'Dark Modern', kind: 'vscode-dark' },
  { label: 'Dark High Contrast', kind: 'vscode-high-contrast' },
  { label: 'Light High Contrast', kind: 'vscode-high-contrast-light' },
];

/** What is measured: text a person must be able to read. */
const TEXTS: Record<string, string> = {
  "someone else's name": 'li.message:not(.mine) .from',
  "inline code in someone else's message": 'li.message:not(.mine) .body p code',
  "a code block in someone else's message": 'li.message:not(.mine) .code-block pre code',
  'your own name': 'li.message.mine .from',
  'your own message': 'li.message.mine .body p',
  'inline code in your own message': 'li.message.mine .body p code',
  'a keyword in highlighted code': 'li.message:not(.mine) .code-block .hljs-keyword',
  'a string in highlighted code': 'li.message:not(.mine) .code-block .hljs-string',
  'a number in highlighted code': 'li.message:not(.mine) .code-block .hljs-number',
  'a name in highlighted code': 'li.message:not(.mine) .code-block .hljs-title',
  'a comment in highlighted code': 'li.message:not(.mine) .code-block .hljs-comment',
  'a message that mentions you': 'li.message.mentions-me .body p',
  'a date separator': 'li.date-separator span',
};

interface Measured {
  what: string;
  ratio: number;
  color: string;
  background: string;
}

/**
 * The contrast of each text as drawn: its computed colour over its background,
 * found by compositing every translucent background up to the first opaque one.
 */
async function measureContrast(frame: Frame): Promise<{ kind: string; measured: Measured[] }> {
  return (await frame.evaluate(`(() => {
    const parse = (c) => {
      const m = /rgba?\\(([^)]+)\\)/.exec(c);
      if (!m) return { r: 0, g: 0, b: 0, a: 0 };
      const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
      return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
    };
    const over = (top, bottom) => ({ r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a), b: top.b * top.a + bottom.b * (1 - top.a), a: 1 });
    const backgroundOf = (element) => {
      const layers = [];
      for (let e = element; e; e = e.parentElement) {
        const color = parse(getComputedStyle(e).backgroundColor);
        if (color.a > 0) layers.push(color);
        if (color.a >= 1) break;
      }
      let color = { r: 255, g: 255, b: 255, a: 1 };
      for (const layer of layers.reverse()) color = over(layer, color);
      return color;
    };
    const luminance = (c) => {
      const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
      return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
    };
    const rgb = (c) => 'rgb(' + [c.r, c.g, c.b].map(Math.round).join(', ') + ')';
    const texts = ${JSON.stringify(TEXTS)};
    return {
      kind: document.body.getAttribute('data-vscode-theme-kind'),
      measured: Object.entries(texts).map(([what, selector]) => {
        const element = document.querySelector(selector);
        if (!element) return { what, ratio: 0, color: 'missing', background: 'missing' };
        const background = backgroundOf(element);
        const color = over(parse(getComputedStyle(element).color), background);
        const [light, dark] = [luminance(color), luminance(background)].sort((a, b) => b - a);
        return { what, ratio: Math.round(((light + 0.05) / (dark + 0.05)) * 100) / 100, color: rgb(color), background: rgb(background) };
      }),
    };
  })()`)) as { kind: string; measured: Measured[] };
}

describe('Chat Room: readable in light, dark and high-contrast themes', function () {
  this.timeout(300_000);
  let browser: Browser;
  let tess: Person;
  let server: ServerProcess;
  let other: TestClient;

  before(async () => {
    server = await ServerProcess.start();
    browser = await launchChromium();
    tess = await startPerson(browser, 'tess', { settings: { 'workbench.colorTheme': 'Default Light Modern' } });
    other = await TestClient.join(server.port, 'other', { room: 'themes' });
  });

  after(async () => {
    other?.close();
    await tess?.stop();
    if (browser) await closeChromium(browser);
    await server?.dispose();
  });

  it('joins and shows names, code and a message of its own', async () => {
    await joinThroughPrompts(tess.page, `127.0.0.1:${server.port}`, 'tess', 'themes');
    await eventually('tess connected', async () => /Connected to .* as tess/.test(await panelText(tess.page)));
    other.send({ type: 'say', id: 't1', text: 'run `npm test` first:\n\n```sh\nnpm install && npm test\n```' });
    other.send({ type: 'say', id: 't2', text: '```typescript\nexport function total(items: Item[]): number {\n  const label = "total"; // counted once\n  return items.length + 1;\n}\n```' });
    other.send({ type: 'say', id: 't3', text: '@tess does this read well?' });
    await sendInPanel(tess.page, 'mine, with `inline code` too');
    await eventually('all four messages', async () => (await messageTexts(tess.page)).length === 4);
  });

  for (const theme of THEMES) {
    it(`keeps names, code and your own messages at ${AA_TEXT_CONTRAST}:1 or more in ${theme.label}`, async () => {
      await chooseColorTheme(tess.page, theme.label);
      const frame = await chatFrame(tess.page);
      await eventually(`the panel in ${theme.label}`, async () => (await measureContrast(frame)).kind === theme.kind, 10_000);
      const { measured } = await measureContrast(frame);
      await saveScreenshot(tess.page, `themes-${theme.kind}`);
      const unreadable = measured.filter((text) => !(text.ratio >= AA_TEXT_CONTRAST));
      assert.deepEqual(unreadable, [], `below ${AA_TEXT_CONTRAST}:1 in ${theme.label}: ${JSON.stringify(unreadable)}`);
      assert.equal(measured.length, Object.keys(TEXTS).length);
    });
  }
});
