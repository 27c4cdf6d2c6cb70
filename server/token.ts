/**
 * The token of a server reachable from other machines when none was given:
 * made once into the data folder and kept, as the TLS certificate is, so the
 * invites people were sent keep working across restarts. `--rotate-token`
 * replaces it on purpose.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TOKEN_MAX_CHARS } from '../shared/protocol';
import { type DataFolder, FILE_MODE } from './dataFolder';
import type { Logger } from './log';

export const TOKEN_FILE = 'token';

export async function keptToken(folder: DataFolder, rotate: boolean, host: string, logger: Logger): Promise<string> {
  const tokenFile = join(folder.path, TOKEN_FILE);
  const why = `binding ${host} makes the server reachable from other machines, so it requires a token`;
  if (!rotate) {
    const kept = await readFile(tokenFile, 'utf8').then(
      (text) => text.trim(),
      () => undefined,
    );
    if (kept !== undefined && kept.length > 0 && kept.length <= TOKEN_MAX_CHARS) {
      logger.info(`${why}; it uses the one kept in ${tokenFile} (--rotate-token replaces it)`);
      return kept;
    }
  }
  const token = randomBytes(32).toString('base64url');
  // Written aside and renamed, so a crash never leaves half a token behind.
  const aside = `${tokenFile}.${process.pid}.partial`;
  await writeFile(aside, token + '\n', { mode: FILE_MODE });
  await rename(aside, tokenFile);
  await folder.syncEntries();
  logger.warn(`${why}; ${rotate ? 'a new one replaced the old one' : 'one was generated'} in ${tokenFile}`);
  return token;
}
