import { stat } from "node:fs/promises";
import { listCache, OPENVZ_CACHE, templateFile } from "../../client/host/cache.js";
import { ExitCode, UserError, usageError } from "../../common/errors.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { hostSettings } from "../host-settings.js";
import { registryClient } from "../registry-flags.js";

const help = `Usage: templar list [--remote [--registry URL] [--distro D] [--arch A]] [--dest DIR] [--json]

Without --remote: the templates pulled into the local template cache (--dest, default
$TEMPLAR_DEST, the host config's dest, else ${OPENVZ_CACHE}, or with --proxmox
/var/lib/vz/template/cache) with their installed versions and how they were verified.
With --remote: the registry's catalog (name, latest version, distro, release, arch, updated).

Options:
  --registry URL   registry base URL (default: $TEMPLAR_REGISTRY)
  --token T        token, when the registry does not allow anonymous pulls (default: $TEMPLAR_TOKEN)
  --distro D, --arch A   filter the remote catalog
  --json           print JSON (an array) instead of a table`;

type Row = Record<string, string>;

function table(rows: Row[], columns: string[]): string {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => r[c] ?? "")))]
    .map((l) => `${l}\n`)
    .join("");
}

/** The catalog may come as an array or as { templates: [...] }; each entry must have a name. */
function catalogEntries(body: unknown): Record<string, unknown>[] {
  const list = Array.isArray(body) ? body : (body as { templates?: unknown })?.templates;
  if (!Array.isArray(list))
    throw new UserError("registry answered GET /v1/templates without a template list");
  return list.filter((e): e is Record<string, unknown> => typeof e?.name === "string");
}

function text(value: unknown): string {
  return value === undefined || value === null ? "" : String(value);
}

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("list", argv, {
      remote: { type: "boolean" },
      registry: { type: "string" },
      token: { type: "string" },
      distro: { type: "string" },
      arch: { type: "string" },
      dest: { type: "string" },
      proxmox: { type: "boolean" },
      json: { type: "boolean" },
    });
    if (positionals.length > 0) throw usageError("list: takes no arguments (see 'templar list --help')");

    if (values.remote) {
      const client = registryClient("list --remote", values);
      const query = new URLSearchParams();
      if (values.distro) query.set("distro", values.distro);
      if (values.arch) query.set("arch", values.arch);
      const qs = query.size > 0 ? `?${query}` : "";
      const entries = catalogEntries(await client.getJson(`v1/templates${qs}`, "list --remote"));
      if (values.json) {
        process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
      } else {
        const rows = entries.map((e) => ({
          name: text(e.name),
          latest: text(e.latest ?? e.latestVersion ?? e.version),
          distro: text(e.distro),
          release: text(e.release),
          arch: text(e.arch),
          updated: text(e.updated),
        }));
        if (rows.length === 0)
          process.stdout.write(`${client.display} has no templates${qs ? " matching the filter" : ""}\n`);
        else process.stdout.write(table(rows, ["name", "latest", "distro", "release", "arch", "updated"]));
      }
      return ExitCode.ok;
    }

    const { dest } = await hostSettings({ dest: values.dest, proxmox: values.proxmox });
    const origins = await listCache(dest);
    const entries = [];
    for (const o of origins) {
      const path = templateFile(dest, o.name, o.format, o.file);
      const present = (await stat(path).catch(() => null))?.size === (o.local?.size ?? o.size);
      entries.push({ ...o, path, present });
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    } else {
      const rows = entries.map((e) => ({
        name: e.name,
        version: e.version,
        file: e.path.slice(e.path.lastIndexOf("/") + 1),
        state: e.present ? (e.via === "delta" ? "ok (delta)" : "ok") : "missing",
        verified: e.verified ?? "",
        registry: e.registry,
      }));
      if (rows.length === 0)
        process.stdout.write(
          `no templates pulled into ${dest} (templar pull NAME --registry URL adds one)\n`,
        );
      else process.stdout.write(table(rows, ["name", "version", "file", "state", "verified", "registry"]));
    }
    return ExitCode.ok;
  },
};
