import { randomBytes, randomInt } from "node:crypto";
import { runHost } from "./container.js";
import type { StaticAddress } from "./families/family.js";

/**
 * A /24 for the test's veth pair from 198.18.0.0/15 (RFC 2544, reserved for benchmarking and
 * never routed), one the host does not already use: the container gets .2, the host end .1
 * and is the container's gateway. Random, so concurrent tests rarely pick the same one (and
 * the host pings through its own link even then).
 */
export async function pickAddress(): Promise<StaticAddress> {
  const used = new Set<string>();
  const r = await runHost("ip", ["-4", "-o", "route", "show", "table", "all"], 5000);
  for (const m of r.stdout.matchAll(/\b(198\.1[89]\.\d+)\.\d+/g)) used.add(m[1]!);
  for (let attempt = 0; attempt < 64; attempt++) {
    const net = `198.${18 + randomInt(2)}.${randomInt(256)}`;
    if (!used.has(net)) return { iface: "eth0", address: `${net}.2`, prefix: 24, gateway: `${net}.1` };
  }
  throw new Error("no free /24 in 198.18.0.0/15 for the test network");
}

/** A fresh machine name and host link name (IFNAMSIZ: at most 15 characters). */
export function containerNames(): { name: string; hostLink: string } {
  const id = randomBytes(4).toString("hex");
  return { name: `templar-test-${id}`, hostLink: `ve-tt${id}` };
}
