/**
 * The server's TLS identity: a certificate and key given on the command line,
 * or a self-signed pair made once into the data folder and reused on every
 * later start, so the fingerprint that clients pinned stays valid.
 *
 * Clients do not check the certificate against any authority; they pin its
 * SHA-256 fingerprint (trust on first use, as Syncthing and Mumble do), so
 * the names and dates inside the certificate matter little.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface TlsIdentity {
  cert: string;
  key: string;
  /** SHA-256 fingerprint of the certificate, as `AB:CD:…` (the form clients pin). */
  fingerprint: string;
  /** Where it came from, for the log. */
  source: 'files' | 'generated' | 'reused';
}

export interface TlsIdentityOptions {
  certFile?: string;
  keyFile?: string;
  /** Where a self-signed pair is kept when no files are given. */
  dataDir?: string;
}

export const GENERATED_CERT_FILE = 'tls-cert.pem';
export const GENERATED_KEY_FILE = 'tls-key.pem';
/** Long enough that nobody meets an expired pin; the pin, not the dates, is what clients trust. */
const GENERATED_VALIDITY_DAYS = 20 * 365;

export function certificateFingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

export async function loadTlsIdentity(options: TlsIdentityOptions): Promise<TlsIdentity> {
  if (options.certFile !== undefined || options.keyFile !== undefined) {
    if (options.certFile === undefined || options.keyFile === undefined) throw new Error('--tls-cert and --tls-key go together');
    const [cert, key] = await Promise.all([readFile(options.certFile, 'utf8'), readFile(options.keyFile, 'utf8')]);
    return { cert, key, fingerprint: certificateFingerprint(cert), source: 'files' };
  }
  if (options.dataDir === undefined) throw new Error('--tls without --tls-cert/--tls-key keeps its certificate in the data folder, so it cannot be used with --memory');

  const certFile = join(options.dataDir, GENERATED_CERT_FILE);
  const keyFile = join(options.dataDir, GENERATED_KEY_FILE);
  // The key is written before the certificate, so a certificate on disk always has its key.
  if (existsSync(certFile) && existsSync(keyFile)) {
    const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    return { cert, key, fingerprint: certificateFingerprint(cert), source: 'reused' };
  }

  const now = new Date();
  const generated = await generate([{ name: 'commonName', value: `Chat Room server on ${hostname()}` }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: now,
    notAfterDate: new Date(now.getTime() + GENERATED_VALIDITY_DAYS * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    ],
  });
  await mkdir(options.dataDir, { recursive: true });
  await writeFileAtomically(keyFile, generated.private, 0o600);
  await writeFileAtomically(certFile, generated.cert, 0o600);
  return { cert: generated.cert, key: generated.private, fingerprint: certificateFingerprint(generated.cert), source: 'generated' };
}

/** Written aside and renamed, so a crash never leaves half a key or certificate behind. */
async function writeFileAtomically(file: string, text: string, mode: number): Promise<void> {
  const aside = `${file}.${process.pid}.partial`;
  await writeFile(aside, text, { mode });
  await rename(aside, file);
}
