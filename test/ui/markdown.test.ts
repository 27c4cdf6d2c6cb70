// The panel's security boundary (extension/webview/markdown.ts) on its own, in
// a real Chromium page: what a stranger writes may become formatting, web
// links, `path:line` links and code blocks, and nothing else. The module is
// bundled alone for the browser (out/test/ui/markdownInBrowser.js).
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { closeChromium, launchChromium } from './harness';

interface Rendered {
  html: string;
  text: string;
  /** Every element's tag, lower case. */
  tags: string[];
  links: { href: string; rel: string; title: string; path?: string; line?: string; className: string }[];
  /** Attributes whose name starts with "on", anywhere. */
  handlers: number;
  copyButtons: number;
  insertButtons: number;
  pwned: unknown;
}

describe('Markdown and sanitising (the panel\'s security boundary), in a real browser', function () {
  this.timeout(60_000);
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    browser = await launchChromium();
    page = await browser.newPage();
    await page.setContent('<!DOCTYPE html><html><body><div id="out"></div></body></html>');
    await page.addScriptTag({ content: readFileSync(join(__dirname, 'markdownInBrowser.js'), 'utf8') });
  });

  after(async () => {
    if (browser) await closeChromium(browser);
  });

  async function render(text: string): Promise<Rendered> {
    const rendered = (await page.evaluate(`(() => {
      const out = document.getElementById('out');
      out.replaceChildren(ChatMarkdown.renderMessageBody(${JSON.stringify(text)}));
      const all = [...out.querySelectorAll('*')];
      return {
        html: out.innerHTML,
        text: out.textContent,
        tags: all.map((element) => element.tagName.toLowerCase()),
        links: [...out.querySelectorAll('a')].map((a) => ({ href: a.getAttribute('href'), rel: a.rel, title: a.title, path: a.dataset.path, line: a.dataset.line, className: a.className })),
        handlers: all.filter((element) => [...element.attributes].some((attribute) => attribute.name.toLowerCase().startsWith('on'))).length,
        copyButtons: out.querySelectorAll('.code-block > .code-actions > button.copy-code').length,
        insertButtons: out.querySelectorAll('.code-block > .code-actions > button.insert-code').length,
        pwned: window.__pwned ?? null,
      };
    })()`)) as Rendered;
    await new Promise((resolve) => setTimeout(resolve, 50)); // anything that would run on load gets its chance
    return { ...rendered, pwned: await page.evaluate('window.__pwned ?? null') };
  }

  it('shows HTML as text: no script runs, no element is made from it', async () => {
    const rendered = await render('<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> <iframe src="https://example.com"></iframe>');
    assert.equal(rendered.pwned, null);
    // The iframe's address is linkified like any other web address in text; the tags themselves stay text.
    assert.deepEqual(rendered.tags, ['p', 'a'], rendered.html);
    assert.equal(rendered.handlers, 0);
    assert.ok(rendered.text.includes('<script>window.__pwned = 1</script>'));
  });

  it('keeps formatting: emphasis, lists, quotes and inline code', async () => {
    const rendered = await render('**bold** _it_ ~~gone~~ `code`\n\n- one\n- two\n\n> quoted');
    for (const tag of ['strong', 'em', 's', 'code', 'ul', 'li', 'blockquote']) assert.ok(rendered.tags.includes(tag), `${tag} in ${rendered.html}`);
  });

  it('links only to http(s), opened without a referrer, the target shown on hover', async () => {
    const rendered = await render('[guide](https://example.com/guide) and http://example.org');
    assert.deepEqual(
      rendered.links.map((link) => link.href),
      ['https://example.com/guide', 'http://example.org'],
    );
    for (const link of rendered.links) {
      assert.equal(link.rel, 'noreferrer noopener');
      assert.equal(link.title, link.href);
    }
  });

  it('makes no link of any other scheme: javascript, data, command, file, vscode', async () => {
    for (const href of ['javascript:window.__pwned=3', 'data:text/html,<b>x</b>', 'command:workbench.action.terminal.new', 'file:///etc/passwd', 'vscode://settings']) {
      const rendered = await render(`[click me](${href}) <${href}>`);
      assert.deepEqual(rendered.links, [], `${href} became ${rendered.html}`);
      assert.ok(rendered.text.includes('click me'));
    }
  });

  it('asks for no image, even one on the web', async () => {
    const rendered = await render('![logo](https://example.com/logo.png)');
    assert.ok(!rendered.tags.includes('img'), rendered.html);
  });

  it('shows bidi controls as codes instead of letting them reorder a line', async () => {
    const rendered = await render('price \u202E$01.3\u202C and \u2066isolate\u2069');
    assert.ok(rendered.text.includes('⟨U+202E⟩') && rendered.text.includes('⟨U+202C⟩') && rendered.text.includes('⟨U+2066⟩'), rendered.text);
    assert.ok(!/[\u202A-\u202E\u2066-\u2069]/.test(rendered.text));
  });

  it('links `path:line` references, but not inside code blocks or other links', async () => {
    const rendered = await render('see src/app.ts:42 (and lib/x.js:7)\n\n```\nnot/linked.ts:3\n```\n\n[https://example.com/a.ts:5](https://example.com/a.ts:5)');
    const paths = rendered.links.filter((link) => link.className === 'path-link');
    assert.deepEqual(
      paths.map((link) => [link.path, link.line, link.href]),
      [
        ['src/app.ts', '42', '#'],
        ['lib/x.js', '7', '#'],
      ],
    );
    assert.ok(rendered.text.includes('not/linked.ts:3'));
  });

  it('puts each code block in a wrapper with its Copy and Insert buttons, and nothing runs from it', async () => {
    const rendered = await render('```ts\nconst a = "<script>window.__pwned = 4</script>";\n```\n\n```\ntwo\n```');
    assert.equal(rendered.copyButtons, 2, rendered.html);
    assert.equal(rendered.insertButtons, 2, rendered.html);
    assert.equal(rendered.handlers, 0);
    assert.equal(rendered.pwned, null);
    assert.ok(rendered.text.includes('<script>window.__pwned = 4</script>'));
  });

  it('highlights a named language with spans only, and hostile code stays text in every language', async () => {
    const hostile = '</span><img src=x onerror="window.__pwned = 5"><script>window.__pwned = 6</script><a href="javascript:window.__pwned=7">x</a>';
    for (const language of ['html', 'xml', 'typescript', 'markdown', 'bash', 'css', 'json', 'unknown-language']) {
      const rendered = await render(`\`\`\`${language}\n${hostile}\n<style>body{display:none}</style> "\\" \`x\`\n\`\`\``);
      const inCode = rendered.tags.slice(rendered.tags.indexOf('pre'));
      for (const tag of inCode) assert.ok(['pre', 'code', 'span'].includes(tag), `${language}: ${tag} in ${rendered.html}`);
      if (language === 'unknown-language') assert.ok(!inCode.includes('span'), 'an unknown language stays plain');
      assert.equal(rendered.handlers, 0, language);
      assert.equal(rendered.pwned, null, language);
      assert.ok(rendered.text.includes(hostile), `${language}: the code reads as written`);
    }
    const highlighted = await render('```html\n<b onclick="x()">hi</b>\n```');
    assert.ok(highlighted.html.includes('hljs-tag'), highlighted.html);
  });

  it('keeps a hostile language name from becoming markup or an attribute', async () => {
    const rendered = await render('```"><img src=x onerror="window.__pwned = 8"> onmouseover=alert(1)\ncode\n```');
    assert.equal(rendered.handlers, 0, rendered.html);
    assert.ok(!rendered.tags.includes('img'), rendered.html);
    assert.equal(rendered.pwned, null);
    assert.ok(rendered.text.includes('code'));
  });
});
