/**
 * The floor of bench/pack.ts: copies stdin to stdout and prints the stream's sha256 on stderr.
 *
 *   tar --sort=name --numeric-owner -cf - . | node dist/bench/sha256-relay.js | zstd -T0 -3 -q > x
 *
 * A packer in Node that records the tar's sha256 (as every templar manifest does) moves each byte
 * through its own memory at least once: read, hash, write. This does only that, with GNU tar
 * doing the walk, so `templar pack` cannot be expected to beat it by much; the bench prints
 * templar's time against it as well as against the plain `tar | zstd`.
 *
 * The pipes come from the shell and stay blocking: Node leaves fds 0 and 1 alone as long as
 * process.stdin and process.stdout are never touched.
 */
import { createHash } from "node:crypto";
import { readSync, writeSync } from "node:fs";

const CHUNK = 1 << 20;

function relay(): void {
  const buffer = Buffer.allocUnsafe(CHUNK);
  const hash = createHash("sha256");
  let total = 0;
  for (;;) {
    const got = readSync(0, buffer, 0, CHUNK, null);
    if (got === 0) break;
    const chunk = buffer.subarray(0, got);
    hash.update(chunk);
    for (let off = 0; off < got; ) off += writeSync(1, chunk, off, got - off);
    total += got;
  }
  process.stderr.write(`${total} ${hash.digest("hex")}\n`);
}

relay();
