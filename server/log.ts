/** The server's log: plain lines like the seed server's, or one JSON object a line for machines. */
export type LogFormat = 'text' | 'json';
export type LogLevel = 'info' | 'warn' | 'error';

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function createLogger(format: LogFormat, write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const emit = (level: LogLevel, message: string, fields?: Record<string, unknown>): void => {
    if (format === 'json') {
      write(JSON.stringify({ ts: new Date().toISOString(), level, msg: message, ...fields }) + '\n');
    } else {
      write((level === 'info' ? '' : `${level}: `) + message + '\n');
    }
  };
  return {
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
  };
}

/** A logger that drops everything, for embedding the server in tests and benchmarks. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
