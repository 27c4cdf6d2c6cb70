/**
 * Saved counterexamples of the fuzz properties: a failing input is written to
 * test/fuzz/regressions.json (commit it) and replayed before the random runs
 * from then on, so a bug once found stays tested.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface RegressionCase {
  property: string;
  /** The failing input, as the property's JSON form. */
  input: unknown;
  found: string;
  seed?: number;
}

/** Regression cases live next to the fuzz sources (the tests run from out/test/fuzz). */
function regressionFile(): string {
  let dir = __dirname;
  for (let depth = 0; depth < 8; depth++) {
    const candidate = join(dir, 'test', 'fuzz', 'regressions.json');
    if (existsSync(join(dir, 'package.json'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('cannot find the repository root');
}

export function readRegressions(): RegressionCase[] {
  const path = regressionFile();
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as RegressionCase[]) : [];
}

export function saveRegression(entry: RegressionCase): void {
  const all = readRegressions();
  if (all.some((existing) => existing.property === entry.property && JSON.stringify(existing.input) === JSON.stringify(entry.input))) return;
  all.push(entry);
  writeFileSync(regressionFile(), JSON.stringify(all, null, 2) + '\n');
}
