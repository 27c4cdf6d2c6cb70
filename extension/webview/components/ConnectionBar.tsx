import { useEffect, useState } from 'preact/hooks';
import type { ConnectionView, ServerOffer, WebviewToHost } from '../../../shared/webviewMessages';
import type { IconName } from '../icons';
import { Icon } from './Icon';

interface Props {
  connection: ConnectionView;
  me: string | undefined;
  serverOffer: ServerOffer | undefined;
  post(message: WebviewToHost): void;
}

/** Where the connection stands, with what the person can do about it (Reconnect, Join, Start or Restart the server). */
export function ConnectionBar({ connection, me, serverOffer, post }: Props) {
  const action = (label: string, icon: IconName, message: WebviewToHost, primary = false) => (
    <button type="button" class={primary ? 'action primary' : 'action'} onClick={() => post(message)}>
      <Icon name={icon} />
      {label}
    </button>
  );
  let text: string;
  const actions = [];
  switch (connection.kind) {
    case 'idle':
      text = 'Not in a room.';
      actions.push(action('Join Room', 'join', { type: 'join' }));
      break;
    case 'connecting':
      text = `Connecting to ${connection.address}…`;
      break;
    case 'connected':
      text = me ? `Connected to ${connection.address} as ${me}` : `Connected to ${connection.address}`;
      break;
    case 'reconnecting':
      return (
        <div id="connection" class="connection reconnecting" role="status" aria-live="polite">
          <Countdown retryAt={connection.retryAt} reason={connection.reason} serverOffer={serverOffer} />
          {/* Someone in the room is offered the server back, never "Join". */}
          {serverOffer &&
            (serverOffer === 'restart' ? action('Restart Server', 'restartServer', { type: 'startServer' }, true) : action('Start Server', 'startServer', { type: 'startServer' }, true))}
          {action('Reconnect Now', 'reconnect', { type: 'reconnect' })}
        </div>
      );
    case 'disconnected':
      text = connection.reason.startsWith('You ') ? connection.reason : `Disconnected: ${connection.reason}`;
      actions.push(action('Join Room', 'join', { type: 'join' }, true));
      break;
  }
  return (
    <div id="connection" class={`connection ${connection.kind}`} role="status" aria-live="polite">
      <span>{text}</span>
      {actions}
    </div>
  );
}

function Countdown({ retryAt, reason, serverOffer }: { retryAt: number; reason: string; serverOffer: ServerOffer | undefined }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    setNow(Date.now());
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [retryAt]);
  const seconds = Math.max(0, Math.ceil((retryAt - now) / 1000));
  const down = serverOffer === 'restart' ? ' The chat server on this machine has stopped.' : serverOffer === 'start' ? ' The chat server on this machine is not running.' : '';
  return <span>{`Connection lost (${reason})${down} Reconnecting in ${seconds} s…`}</span>;
}
