// A progress bar on a terminal (stderr): bytes, rate, ETA. Silence elsewhere.
import * as sys from "../linux/sys.ts";

export class Progress {
  private done_ = 0;
  private last = 0;
  private readonly start = performance.now();

  constructor(
    private readonly what: string,
    /** Bytes in all; undefined where that is not known beforehand (bytes and rate then, no bar or ETA). */
    private readonly total: number | undefined,
  ) {}

  /** A progress bar only where someone watches: stderr is a terminal. */
  static forTerminal(what: string, total: number | undefined): Progress | undefined {
    return sys.isatty(2) ? new Progress(what, total) : undefined;
  }

  advance(n: number): void {
    this.done_ += n;
    const now = performance.now();
    if (now - this.last < 100) return;
    this.last = now;
    this.draw(now);
  }

  private draw(now: number): void {
    const rate = this.done_ / Math.max((now - this.start) / 1000, 0.001);
    // \x1b[K clears what a longer line drawn before left behind
    sys.writeAll(2, new TextEncoder().encode(`\r${this.what} ${this.shown(rate)}\x1b[K`));
  }

  /** Bytes and rate; with a total, a bar before them and an ETA after. */
  private shown(rate: number): string {
    if (this.total === undefined) return `${mb(this.done_)} ${mb(rate)}/s`;
    const frac = this.total > 0 ? Math.min(1, this.done_ / this.total) : 0;
    const width = 24;
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
    const eta = rate > 0 && this.total > this.done_ ? `${Math.ceil((this.total - this.done_) / rate)}s` : "-";
    return `[${bar}] ${mb(this.done_)}/${mb(this.total)} ${mb(rate)}/s ETA ${eta}`;
  }

  done(): void {
    this.draw(performance.now());
    sys.writeAll(2, new TextEncoder().encode("\n"));
  }
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
