import type { StorageDriver } from "../storage/driver.js";
import { layout, parseTemplateKey } from "./layout.js";

/**
 * Tags: mutable pointers from a tag name to a version, one small object each holding
 * "<version>\n". The one reader and writer of that format.
 */
export class Tags {
  constructor(private readonly driver: StorageDriver) {}

  /** The version `tag` points to, or null. */
  async get(name: string, tag: string): Promise<string | null> {
    return parseTag(await this.driver.get(layout.tag(name, tag)));
  }

  /** Every tag of a template, by tag name. */
  async all(name: string): Promise<Record<string, string>> {
    const tags: Record<string, string> = {};
    for await (const object of this.driver.list(layout.tags(name))) {
      const parsed = parseTemplateKey(object.key);
      if (parsed?.kind !== "tag") continue;
      const version = parseTag(await this.driver.get(object.key));
      if (version) tags[parsed.tag] = version;
    }
    return tags;
  }

  set(name: string, tag: string, version: string): Promise<void> {
    return this.driver.put(layout.tag(name, tag), Buffer.from(`${version}\n`));
  }

  /** false when there was no such tag. */
  async delete(name: string, tag: string): Promise<boolean> {
    if (!(await this.driver.stat(layout.tag(name, tag)))) return false;
    await this.driver.delete(layout.tag(name, tag));
    return true;
  }

  /** Removes every tag of `name` that points to `version` (the version is being deleted). */
  async dropVersion(name: string, version: string): Promise<void> {
    for (const [tag, target] of Object.entries(await this.all(name))) {
      if (target === version) await this.driver.delete(layout.tag(name, tag));
    }
  }
}

function parseTag(bytes: Buffer | null): string | null {
  const version = bytes?.toString("utf8").trim();
  return version ? version : null;
}
