/**
 * The load generator of bench/registry.ts, run as its own process (pinned to the client core):
 *
 *   node dist/bench/registry-load.js URL SECONDS CONNECTIONS
 *
 * Keep-alive GETs on CONNECTIONS sockets for SECONDS; prints {requests, errors, seconds} as JSON,
 * where requests counts complete 200 answers.
 */
import http from "node:http";

async function loadLoop(url: string, seconds: number, connections: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const deadline = Date.now() + seconds * 1000;
  let requests = 0;
  let errors = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      http
        .get(url, { agent }, (res) => {
          res.on("data", () => {});
          res.on("end", () => {
            if (res.statusCode === 200) requests++;
            else errors++;
            resolve();
          });
        })
        .on("error", () => {
          errors++;
          resolve();
        });
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < deadline) await one();
    }),
  );
  process.stdout.write(JSON.stringify({ requests, errors, seconds: (Date.now() - started) / 1000 }));
  agent.destroy();
}

const [url, seconds, connections] = process.argv.slice(2);
if (!url || !seconds || !connections) {
  process.stderr.write("usage: registry-load.js URL SECONDS CONNECTIONS\n");
  process.exit(2);
}
await loadLoop(url, Number(seconds), Number(connections));
