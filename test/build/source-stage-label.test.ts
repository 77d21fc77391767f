import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { BuildContext } from "../../builder/context.js";
import { sourceMethods } from "../../builder/sources/index.js";

describe("the first build stage names the program it runs", () => {
  const method = sourceMethods.debootstrap!;
  const config = method.schema.parse({ method: "debootstrap", suite: "trixie" });

  it("names mmdebstrap when it is installed (or asked for), not just 'debootstrap'", () => {
    const forced = method.describe!(config, { bootstrapTool: "mmdebstrap" } as BuildContext);
    expect(forced).toMatch(/^mmdebstrap trixie \(.*minutes\)$/);
    const installed = spawnSync("sh", ["-c", "command -v mmdebstrap"]).status === 0;
    const chosen = method.describe!(config, {} as BuildContext);
    expect(chosen.startsWith(installed ? "mmdebstrap trixie" : "debootstrap trixie")).toBe(true);
  });
});
