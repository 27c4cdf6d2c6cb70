/** Completion in the message box (extension/webview/completion.ts) and the slash commands it offers (shared/slashCommands.ts). */
import assert from 'node:assert/strict';
import { applyCompletion, completionItems, completionQueryAt, MAX_COMPLETIONS, type CompletionSources } from '../../extension/webview/completion';
import { parseSlashCommand, SLASH_COMMANDS } from '../../shared/slashCommands';

const sources: CompletionSources = { members: ['alice', 'Albert', 'bob', 'malcolm'], rooms: ['lobby', 'release', 'random'], me: 'bob' };
const complete = (text: string, caret = text.length) => {
  const query = completionQueryAt(text, caret);
  return query ? completionItems(query, sources).map((item) => item.label) : undefined;
};

describe('message box completion', () => {
  it('completes members after @, names that start with it first, never me', () => {
    assert.deepEqual(complete('hi @al'), ['alice', 'Albert', 'malcolm']);
    assert.deepEqual(complete('@'), ['alice', 'Albert', 'malcolm']);
    assert.deepEqual(complete('@BO'), []);
  });

  it('completes rooms after #, and commands only at the start of the message', () => {
    assert.deepEqual(complete('see #r'), ['#release', '#random']);
    assert.deepEqual(complete('/'), SLASH_COMMANDS.map((command) => `/${command.name}${command.argument ? ` ${command.argument}` : ''}`));
    assert.deepEqual(complete('/to'), ['/topic text']);
    assert.equal(complete('say /to'), undefined);
  });

  it('does not complete an e-mail address, a word with # inside, or after the caret has left the word', () => {
    assert.equal(complete('mail x@al'), undefined);
    assert.equal(complete('issue#4'), undefined);
    assert.equal(complete('@al done'), undefined);
    // What counts is the text before the caret.
    assert.deepEqual(complete('@al and more', 3), ['alice', 'Albert', 'malcolm']);
  });

  it('replaces what was typed with the choice and a space, keeping the rest', () => {
    const text = 'ping @al about it';
    const query = completionQueryAt(text, 8)!;
    const [alice] = completionItems(query, sources);
    assert.deepEqual(applyCompletion(text, query, alice), { text: 'ping @alice about it', caret: 12 });
    const command = completionQueryAt('/j', 2)!;
    assert.deepEqual(applyCompletion('/j', command, completionItems(command, sources)[0]), { text: '/join ', caret: 6 });
  });

  it('marks a command typed in full that takes nothing, so Enter runs it rather than adding a space', () => {
    const finished = (text: string) => completionItems(completionQueryAt(text, text.length)!, sources).map((item) => `${item.label}${item.finished ? ' (finished)' : ''}`);
    assert.deepEqual(finished('/leave'), ['/leave (finished)']);
    assert.deepEqual(finished('/LEAVE'), ['/leave (finished)']);
    assert.deepEqual(finished('/leav'), ['/leave']);
    assert.deepEqual(finished('/me'), ['/me action'], 'a command that wants more is picked, not run');
  });

  it('shows at most a handful', () => {
    const many: CompletionSources = { ...sources, members: Array.from({ length: 50 }, (_, index) => `user${index}`) };
    assert.equal(completionItems(completionQueryAt('@u', 2)!, many).length, MAX_COMPLETIONS);
  });

  it('marks the owner-only command, and takes other commands when given', () => {
    const kick = completionItems(completionQueryAt('/ki', 3)!, sources)[0];
    assert.match(kick.detail, /room owner/);
    const custom = completionItems(completionQueryAt('/sh', 3)!, { ...sources, commands: [{ name: 'shrug', argument: '', description: 'Shrug' }] });
    assert.deepEqual(custom.map((item) => item.insert), ['/shrug ']);
  });
});

describe('slash commands', () => {
  it('reads a known command and its argument, and an unknown one without a definition', () => {
    assert.deepEqual(parseSlashCommand('/dm  alice '), { name: 'dm', argument: 'alice', command: SLASH_COMMANDS.find((command) => command.name === 'dm') });
    assert.equal(parseSlashCommand('/TOPIC Release day\nsecond line')?.argument, 'Release day\nsecond line');
    assert.deepEqual(parseSlashCommand('/nope x'), { name: 'nope', argument: 'x' });
  });

  it('is not a command: a lone slash, a doubled slash, a path, or a slash later in the text', () => {
    for (const text of ['/', '//not a command', '/usr/bin/env', 'and/or', ' /me']) assert.equal(parseSlashCommand(text), undefined, text);
  });
});
