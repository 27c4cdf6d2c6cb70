/** Mentions and single emoji, as the server counts them and the extension shows them. */
import assert from 'node:assert/strict';
import { isSingleEmoji, mentions } from '../../shared/mentions';

describe('mentions', () => {
  it('finds @name at a word boundary, folded like names', () => {
    assert.equal(mentions('hi @bob', 'bob'), true);
    assert.equal(mentions('@Bob, look', 'bob'), true);
    assert.equal(mentions('(@ｂｏｂ)', 'bob'), true, 'full-width letters fold to the name');
    assert.equal(mentions('end of line @bob.', 'bob'), true);
    assert.equal(mentions('@bob\nnext', 'bob'), true);
  });

  it('does not fire on e-mail addresses, longer names or a bare name', () => {
    assert.equal(mentions('write to x@bob.com', 'bob'), false);
    assert.equal(mentions('hi @bobby', 'bob'), false);
    assert.equal(mentions('hi @bob_2', 'bob'), false);
    assert.equal(mentions('hi bob', 'bob'), false);
    assert.equal(mentions('x@bob and then @bob', 'bob'), true, 'a later real mention still counts');
  });

  it('handles names that are not plain letters', () => {
    assert.equal(mentions('thanks @🦊fox!', '🦊fox'), true);
    assert.equal(mentions('@Zoë: ok', 'zoë'), true);
    assert.equal(mentions('nothing here', ''), false);
  });
});

describe('single emoji', () => {
  it('takes one emoji grapheme, modifiers and sequences included', () => {
    for (const emoji of ['👍', '👍🏽', '❤️', '👨‍👩‍👧', '🇫🇷', '🏳️‍🌈']) assert.equal(isSingleEmoji(emoji), true, emoji);
  });

  it('refuses text, two emoji, invisible characters and empty strings', () => {
    for (const text of ['', 'a', '👍👍', '👍 ', '\u200d', '1', ':)', '👍\u200b']) assert.equal(isSingleEmoji(text), false, JSON.stringify(text));
  });
});
