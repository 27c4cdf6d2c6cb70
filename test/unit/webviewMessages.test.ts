/** The host reads what a webview posts as input (shared/webviewMessages.ts): the new messages are checked like the old. */
import assert from 'node:assert/strict';
import { asWebviewMessage } from '../../shared/webviewMessages';

describe('webview messages, as the host reads them', () => {
  it('takes an Insert at cursor with its text', () => {
    assert.deepEqual(asWebviewMessage({ type: 'insertCode', text: 'let a = 1;' }), { type: 'insertCode', text: 'let a = 1;' });
  });

  it('ignores an Insert at cursor whose text is not a string, and a message type it does not know', () => {
    for (const text of [42, null, undefined, { toString: () => 'x' }, ['x']]) assert.equal(asWebviewMessage({ type: 'insertCode', text }), undefined, String(text));
    assert.equal(asWebviewMessage({ type: 'addToDraft', text: 'host to webview only' }), undefined);
  });

  it('takes /topic and /kick with or without the request id of a command typed in the box, and not with a bad one', () => {
    assert.deepEqual(asWebviewMessage({ type: 'setTopic', text: 'Friday', requestId: 7 }), { type: 'setTopic', text: 'Friday', requestId: 7 });
    assert.deepEqual(asWebviewMessage({ type: 'kick', name: 'bob' }), { type: 'kick', name: 'bob' });
    for (const requestId of ['7', 1.5, null]) {
      assert.equal(asWebviewMessage({ type: 'setTopic', text: 'Friday', requestId }), undefined, String(requestId));
      assert.equal(asWebviewMessage({ type: 'kick', name: 'bob', requestId }), undefined, String(requestId));
    }
  });
});
