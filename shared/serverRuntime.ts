/**
 * How the companion server's Node process is started, wherever it is started
 * from (the extension, `npm start`, the tests and the benchmark), so that what
 * is measured is what users run.
 *
 * `--max-semi-space-size=1` caps V8's young generation at 1 MiB per
 * semi-space. By default it grows to 16 MiB under a burst of joins and stays
 * there, which the benchmark saw as about 5 KiB of RSS per idle connection on
 * top of the ~7 KiB the connection itself needs. Young collections become
 * more frequent but stay cheap, because almost nothing a chat server
 * allocates per message survives them.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
