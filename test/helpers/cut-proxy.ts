import { createServer, type Socket } from "node:net";

/**
 * A TCP proxy on 127.0.0.1:0 that forwards to a target and can cut a connection after a number
 * of bytes, in either direction: the network failure a resuming client must survive. `cut`
 * is asked once per connection and returns how many bytes may pass (null: no cut).
 */
export interface CutProxyOptions {
  /** Bytes from the server to the client before the connection is cut (downloads). */
  downstream?: () => number | null;
  /** Bytes from the client to the server before the connection is cut (uploads). */
  upstream?: () => number | null;
}

export interface CutProxy {
  port: number;
  url: string;
  /** Connections cut so far. */
  readonly cuts: number;
  close(): Promise<void>;
}

function pipeWithBudget(from: Socket, to: Socket, budget: number | null, onCut: () => void): void {
  let left = budget ?? Number.POSITIVE_INFINITY;
  from.on("data", (chunk: Buffer) => {
    if (left === Number.POSITIVE_INFINITY) {
      if (!to.write(chunk)) from.pause();
      return;
    }
    if (chunk.length < left) {
      left -= chunk.length;
      if (!to.write(chunk)) from.pause();
      return;
    }
    const part = chunk.subarray(0, left);
    left = 0;
    from.pause();
    // Let the allowed bytes reach the peer, then break both sides.
    to.write(part, () => {
      onCut();
      from.destroy();
      to.destroy();
    });
  });
  to.on("drain", () => from.resume());
  from.on("end", () => to.end());
}

export async function startCutProxy(targetPort: number, options: CutProxyOptions = {}): Promise<CutProxy> {
  let cuts = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = options.upstream?.() ?? null;
    const downstream = options.downstream?.() ?? null;
    const backend = new (client.constructor as typeof Socket)();
    sockets.add(client);
    sockets.add(backend);
    const onCut = () => cuts++;
    backend.connect(targetPort, "127.0.0.1", () => {
      pipeWithBudget(client, backend, upstream, onCut);
      pipeWithBudget(backend, client, downstream, onCut);
    });
    const drop = () => {
      client.destroy();
      backend.destroy();
    };
    client.on("error", drop);
    backend.on("error", drop);
    client.on("close", () => {
      sockets.delete(client);
      backend.destroy();
    });
    backend.on("close", () => {
      sockets.delete(backend);
      client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get cuts() {
      return cuts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
