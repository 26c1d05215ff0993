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
    const secs = (now - this.start) / 1000;
    const rate = this.done_ / Math.max(secs, 0.001);
    if (this.total === undefined) return sys.writeAll(2, new TextEncoder().encode(`\r${this.what} ${mb(this.done_)} ${mb(rate)}/s\x1b[K`));
    const frac = this.total > 0 ? Math.min(1, this.done_ / this.total) : 0;
    const width = 24;
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
    const eta = rate > 0 && this.total > this.done_ ? `${Math.ceil((this.total - this.done_) / rate)}s` : "-";
    // \x1b[K clears what a longer line drawn before left behind
    const line = `\r${this.what} [${bar}] ${mb(this.done_)}/${mb(this.total)} ${mb(rate)}/s ETA ${eta}\x1b[K`;
    sys.writeAll(2, new TextEncoder().encode(line));
  }

  done(): void {
    this.draw(performance.now());
    sys.writeAll(2, new TextEncoder().encode("\n"));
  }
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
