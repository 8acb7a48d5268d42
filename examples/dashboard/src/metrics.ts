/** Named samples in memory: the latest value, a count and a mean per name. */

export interface Sample {
  name: string;
  value: number;
  at: number;
}

export interface Summary {
  count: number;
  last: number;
  mean: number;
}

export type Listener = (sample: Sample) => void;

export class MetricsStore {
  private readonly totals = new Map<string, { count: number; sum: number; last: number }>();
  private readonly listeners = new Set<Listener>();

  /** Records one sample and tells every subscriber. */
  record(name: string, value: number, at: number = Date.now()): Sample {
    if (!Number.isFinite(value)) {
      throw new RangeError(`metric ${name}: ${value} is not a finite number`);
    }
    const total = this.totals.get(name) ?? { count: 0, sum: 0, last: 0 };
    total.count += 1;
    total.sum += value;
    total.last = value;
    this.totals.set(name, total);
    const sample = { name, value, at };
    for (const listener of this.listeners) {
      listener(sample);
    }
    return sample;
  }

  /** Every metric's summary, by name in alphabetical order. */
  snapshot(): Record<string, Summary> {
    const out: Record<string, Summary> = {};
    for (const name of [...this.totals.keys()].sort()) {
      const t = this.totals.get(name)!;
      out[name] = { count: t.count, last: t.last, mean: t.sum / t.count };
    }
    return out;
  }

  /** Calls `listener` with every new sample until the returned function is called. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
}
