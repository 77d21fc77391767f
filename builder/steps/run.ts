import { z } from "zod";
import { formatPlace } from "../recipe/schema.js";
import { runStepScript } from "./in-root.js";
import { defineStep } from "./step.js";

const RunConfig = z.union([z.string().min(1), z.strictObject({ script: z.string().min(1) })]);

/** `- run: "script"` (or `{ script: ... }`): a POSIX shell script run inside the root, `set -e`. */
export const run = defineStep({
  name: "run",
  schema: RunConfig,
  async run(config, ctx) {
    const script = typeof config === "string" ? config : config.script;
    await runStepScript(ctx, `run step at ${formatPlace(ctx.place)}`, `set -e\n${script}`);
  },
});
