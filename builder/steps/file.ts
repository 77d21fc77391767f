import { chown, readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { UserError } from "../../common/errors.js";
import { formatPlace } from "../recipe/schema.js";
import { readFileInRoot, replaceFile } from "../rootfs.js";
import { defineStep } from "./step.js";

const FileConfig = z
  .strictObject({
    path: z.string().regex(/^\//, "expected an absolute path inside the root"),
    content: z.string().optional(),
    /** A file relative to the recipe file that declares this step. */
    source: z.string().optional(),
    mode: z
      .union([z.string().regex(/^0?[0-7]{3,4}$/, "expected an octal mode such as 0644"), z.number().int()])
      .default("0644"),
    /** `user:group` as names from the root's /etc/passwd and /etc/group, or numbers. */
    owner: z
      .string()
      .regex(/^[a-z0-9_.-]+(:[a-z0-9_.-]+)?$/, "expected user:group")
      .default("0:0"),
  })
  .refine(
    (c) => (c.content === undefined) !== (c.source === undefined),
    "expected exactly one of content or source",
  );

/** Resolves a user or group name through the root's own database (ids differ between distros). */
async function idOf(
  root: string,
  db: "/etc/passwd" | "/etc/group",
  name: string,
): Promise<number | undefined> {
  if (/^\d+$/.test(name)) return Number(name);
  const text = await readFileInRoot(root, db, "utf8").catch(() => "");
  const line = text.split("\n").find((l) => l.split(":")[0] === name);
  return line ? Number(line.split(":")[2]) : undefined;
}

/** `- file: { path, content | source, mode, owner }` writes one file into the root. */
export const file = defineStep({
  name: "file",
  schema: FileConfig,
  async run(config, ctx) {
    const where = formatPlace(ctx.place);
    const data =
      config.content ??
      (await readFile(resolve(dirname(ctx.place.file), config.source!)).catch(() => {
        throw new UserError(`${where}: file.source: cannot read ${config.source}`);
      }));
    // A numeric YAML mode like 644 was meant as octal, as in chmod.
    const mode = Number.parseInt(String(config.mode), 8);
    const [user, group = user] = config.owner.split(":") as [string, string?];
    const uid = await idOf(ctx.root, "/etc/passwd", user);
    const gid = await idOf(ctx.root, "/etc/group", group!);
    if (uid === undefined || gid === undefined) {
      throw new UserError(`${where}: file.owner: ${config.owner} is not a user:group of the root`);
    }
    const target = await replaceFile(ctx.root, config.path, data, mode);
    await chown(target, uid, gid);
  },
});
