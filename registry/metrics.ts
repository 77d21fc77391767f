import type { Store } from "./store/store.js";

/**
 * Prometheus text exposition for /metrics. Counters are per process (Prometheus scrapes every
 * replica); the stored-blob gauges come from storage, cached briefly since listing is not free.
 */
export class Metrics {
  private requests = new Map<string, number>();
  bytesServed = 0;
  bytesReceived = 0;
  pushes = 0;
  private stored: { at: number; blobs: number; bytes: number } | null = null;

  constructor(
    private readonly store: Store,
    private readonly storedTtlMs = 30_000,
  ) {}

  request(method: string, route: string, status: number): void {
    const key = `${method}\u0000${route}\u0000${status}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  async render(): Promise<string> {
    if (!this.stored || Date.now() - this.stored.at > this.storedTtlMs) {
      let blobs = 0;
      let bytes = 0;
      for await (const b of this.store.blobs.list()) {
        blobs++;
        bytes += b.size;
      }
      this.stored = { at: Date.now(), blobs, bytes };
    }
    const lines = [
      "# HELP templar_http_requests_total HTTP requests by route and status.",
      "# TYPE templar_http_requests_total counter",
    ];
    for (const [key, n] of [...this.requests].sort()) {
      const [method, route, status] = key.split("\u0000") as [string, string, string];
      lines.push(
        `templar_http_requests_total{method="${method}",route="${escapeLabel(route)}",status="${status}"} ${n}`,
      );
    }
    lines.push(
      "# HELP templar_bytes_served_total Blob and manifest bytes sent to clients.",
      "# TYPE templar_bytes_served_total counter",
      `templar_bytes_served_total ${this.bytesServed}`,
      "# HELP templar_bytes_received_total Blob bytes received in uploads.",
      "# TYPE templar_bytes_received_total counter",
      `templar_bytes_received_total ${this.bytesReceived}`,
      "# HELP templar_pushes_total Manifests pushed (new versions created).",
      "# TYPE templar_pushes_total counter",
      `templar_pushes_total ${this.pushes}`,
      "# HELP templar_blobs_stored Blobs in storage.",
      "# TYPE templar_blobs_stored gauge",
      `templar_blobs_stored{storage="${this.store.kind}"} ${this.stored.blobs}`,
      "# HELP templar_blob_bytes_stored Bytes of all blobs in storage.",
      "# TYPE templar_blob_bytes_stored gauge",
      `templar_blob_bytes_stored{storage="${this.store.kind}"} ${this.stored.bytes}`,
    );
    return `${lines.join("\n")}\n`;
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
