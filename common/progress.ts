/**
 * Progress for long work (build, push, pull, mirror): a redrawn bar on a terminal, a plain line
 * every few seconds otherwise (CI logs stay readable). Writes to stderr so stdout stays data.
 */
export interface Progress {
  /** Sets the amount done so far (bytes or items, same unit as `total`). */
  update(done: number, note?: string): void;
  finish(note?: string): void;
}

export interface ProgressOptions {
  total?: number;
  unit?: "bytes" | "items";
  stream?: NodeJS.WriteStream;
  /** Off for --json and quiet modes. */
  enabled?: boolean;
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function createProgress(label: string, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.enabled === false) return { update() {}, finish() {} };
  const tty = Boolean(stream.isTTY);
  const unit = options.unit ?? "bytes";
  const started = Date.now();
  let lastDraw = 0;
  let done = 0;
  const fmt = (n: number) => (unit === "bytes" ? formatBytes(n) : String(n));

  const line = (note?: string): string => {
    const seconds = (Date.now() - started) / 1000;
    const rate = unit === "bytes" && seconds > 0 ? ` ${formatBytes(done / seconds)}/s` : "";
    const total = options.total;
    const suffix = note ? ` ${note}` : "";
    if (total && total > 0) {
      const fraction = Math.min(1, done / total);
      if (tty) {
        const width = 24;
        const filled = Math.round(fraction * width);
        const bar = `${"#".repeat(filled)}${"-".repeat(width - filled)}`;
        return `${label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${fmt(done)}/${fmt(total)}${rate}${suffix}`;
      }
      return `${label}: ${(fraction * 100).toFixed(0)}% ${fmt(done)}/${fmt(total)}${rate}${suffix}`;
    }
    return `${label}: ${fmt(done)}${rate}${suffix}`;
  };

  return {
    update(value, note) {
      done = value;
      const now = Date.now();
      if (tty) {
        if (now - lastDraw < 100) return;
        lastDraw = now;
        stream.write(`\r\x1b[K${line(note)}`);
      } else if (now - lastDraw >= 5000) {
        lastDraw = now;
        stream.write(`${line(note)}\n`);
      }
    },
    finish(note) {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const text = `${label}: done, ${fmt(done)} in ${seconds}s${note ? ` ${note}` : ""}`;
      stream.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`);
    },
  };
}
