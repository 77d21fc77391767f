import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy in front of a local server that paces what the server sends at `bitsPerSecond`,
 * as a link of that speed would (one link shared by every connection), for benchmarks that
 * compare ways of downloading over something slower than loopback. Requests pass unpaced.
 */
export async function throttledProxy(
  target: URL,
  bitsPerSecond: number,
): Promise<{ url: string; close(): Promise<void> }> {
  let nextFree = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    client.on("close", () => upstream.destroy());
    upstream.on("data", (chunk: Buffer) => {
      const now = performance.now();
      nextFree = Math.max(nextFree, now) + (chunk.length * 8 * 1000) / bitsPerSecond;
      upstream.pause();
      setTimeout(() => {
        client.write(chunk, () => upstream.resume());
      }, nextFree - now);
    });
    upstream.on("end", () => {
      // After the last paced chunk has gone out.
      setTimeout(() => client.end(), Math.max(0, nextFree - performance.now()) + 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
