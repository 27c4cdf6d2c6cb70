/**
 * Certificate pinning for TLS chat servers. The server's certificate is
 * usually self-signed, so no authority vouches for it; instead the client
 * knows the SHA-256 fingerprint it should have (from the invite link, or
 * trusted once by the person, as Syncthing and Mumble do) and refuses any
 * other before a single byte of the hello, and so the token, is sent.
 *
 * It does not import `vscode`, so the same checks run in plain Node tests.
 */
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import { toDisposable } from '../shared/disposable';

const SHA256_BYTES = 32;

/** The fingerprint as bytes, from `AB:CD:…`, `ab cd …` or bare hex; undefined when it is not a SHA-256 fingerprint. */
function fingerprintBytes(text: string): Buffer | undefined {
  const hex = text.replace(/[\s:]/g, '');
  if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== SHA256_BYTES * 2) return undefined;
  return Buffer.from(hex, 'hex');
}

/** The canonical form (`AB:CD:…`, as servers print it), or undefined when `text` is not a SHA-256 fingerprint. */
export function normalizeFingerprint(text: string): string | undefined {
  const bytes = fingerprintBytes(text);
  return bytes && [...bytes].map((byte) => byte.toString(16).padStart(2, '0').toUpperCase()).join(':');
}

/** Compares two fingerprints in constant time; anything that is not a fingerprint matches nothing. */
export function fingerprintsMatch(expected: string, actual: string): boolean {
  const expectedBytes = fingerprintBytes(expected);
  const actualBytes = fingerprintBytes(actual);
  if (!expectedBytes || !actualBytes) return false;
  return timingSafeEqual(expectedBytes, actualBytes);
}

export function fingerprintMismatchMessage(address: string, expected: string, actual: string): string {
  return (
    `The server's certificate fingerprint does not match the invite, so Chat Room did not connect to ${address}. ` +
    `Expected ${normalizeFingerprint(expected) ?? expected}, but the server presented ${normalizeFingerprint(actual) ?? actual}. ` +
    'Someone may be intercepting the connection, or the server made a new certificate: ask its host for a fresh invite.'
  );
}

/** Options for `tls.connect` to a pinned server: the pin replaces the authority check, which a self-signed certificate cannot pass. */
export function pinnedTlsOptions(host: string, port: number): tls.ConnectionOptions {
  // SNI must not carry an IP address (RFC 6066); an empty name sends none.
  return { host, port, rejectUnauthorized: false, servername: isIP(host) ? '' : host, minVersion: 'TLSv1.2' };
}

/** The SHA-256 fingerprint of the certificate a connected TLS socket was shown. */
export function peerFingerprint(socket: tls.TLSSocket): string | undefined {
  const certificate = socket.getPeerCertificate();
  return certificate && typeof certificate.fingerprint256 === 'string' ? certificate.fingerprint256 : undefined;
}

/**
 * Whether `host:port` speaks TLS, and with which certificate: resolves with
 * its fingerprint after a handshake (nothing is sent after it), or undefined
 * when the server does not complete one within `timeoutMs`.
 */
export function probeServerFingerprint(host: string, port: number, timeoutMs = 5_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = tls.connect(pinnedTlsOptions(host, port));
    const owner = toDisposable(() => {
      clearTimeout(timer);
      socket.destroy();
    });
    const finish = (fingerprint: string | undefined): void => {
      owner.dispose();
      resolve(fingerprint);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.once('secureConnect', () => finish(peerFingerprint(socket)));
    socket.once('error', () => finish(undefined));
    socket.once('close', () => finish(undefined));
  });
}
