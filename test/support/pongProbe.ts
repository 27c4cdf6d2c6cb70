/**
 * How long a bystander waits for the server while something else runs: it
 * pings every 5 ms (bounded in count) and keeps the longest round trip. The
 * fault tests use it to show that one connection's heavy work (a big log
 * loading, a search through a busy room) never stalls everyone else.
 */
import { sleep } from './historyChecks';

export class PongProbe {
  private running = true;
  private longestMs = 0;
  private count = 0;
  private readonly loop: Promise<void>;

  /** `roundTrip` sends one ping and resolves at its pong. */
  constructor(roundTrip: () => Promise<void>, maxProbes = 100_000) {
    this.loop = (async () => {
      while (this.running && this.count < maxProbes) {
        const sentAt = Date.now();
        await roundTrip();
        this.longestMs = Math.max(this.longestMs, Date.now() - sentAt);
        this.count += 1;
        await sleep(5);
      }
    })();
  }

  /** The longest wait since the probe started or was last reset. */
  get longest(): number {
    return this.longestMs;
  }

  get probes(): number {
    return this.count;
  }

  /** Starts counting the longest wait afresh (after a warm-up); returns the longest before. */
  reset(): number {
    const before = this.longestMs;
    this.longestMs = 0;
    return before;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
