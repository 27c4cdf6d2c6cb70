/**
 * Delivery latencies, counted in fixed 10 µs buckets up to 5 s (anything
 * slower lands in the last bucket; the true maximum is kept apart). Fixed
 * buckets make recording one array increment, which keeps the load generator
 * cheap, and let the workers' histograms be merged by adding counts.
 */
export const BUCKET_MICROS = 10;
const BUCKET_COUNT = 500_000;

/** How a histogram travels over IPC: only the buckets that were hit. */
export interface HistogramSnapshot {
  buckets: [index: number, count: number][];
  count: number;
  maxMicros: number;
}

export class LatencyHistogram {
  private counts = new Uint32Array(BUCKET_COUNT);
  count = 0;
  maxMicros = 0;

  record(micros: number): void {
    // A clock step cannot make a delivery faster than instant.
    const value = micros < 0 ? 0 : micros;
    const index = Math.min(BUCKET_COUNT - 1, Math.floor(value / BUCKET_MICROS));
    this.counts[index]++;
    this.count++;
    if (value > this.maxMicros) this.maxMicros = value;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.maxMicros = 0;
  }

  snapshot(): HistogramSnapshot {
    const buckets: [number, number][] = [];
    for (let index = 0; index < BUCKET_COUNT; index++) if (this.counts[index] !== 0) buckets.push([index, this.counts[index]]);
    return { buckets, count: this.count, maxMicros: this.maxMicros };
  }

  add(snapshot: HistogramSnapshot): void {
    for (const [index, count] of snapshot.buckets) this.counts[index] += count;
    this.count += snapshot.count;
    if (snapshot.maxMicros > this.maxMicros) this.maxMicros = snapshot.maxMicros;
  }

  /** The latency below which `fraction` of deliveries fell, as the upper edge of its bucket. */
  percentileMicros(fraction: number): number {
    if (this.count === 0) return NaN;
    const wanted = Math.ceil(this.count * fraction);
    let seen = 0;
    for (let index = 0; index < BUCKET_COUNT; index++) {
      seen += this.counts[index];
      // The last bucket holds everything past 5 s; its honest answer is the true maximum.
      if (seen >= wanted) return index === BUCKET_COUNT - 1 ? this.maxMicros : Math.min((index + 1) * BUCKET_MICROS, this.maxMicros);
    }
    return this.maxMicros;
  }
}
