import { z } from "zod";
import { defineStep } from "./step.js";

/** `- preset: container`: the family's container preset (builder/family/presets). */
export const preset = defineStep({
  name: "preset",
  schema: z.literal("container"),
  async run(_config, ctx) {
    await ctx.family.preset.apply(ctx.root, ctx.log);
  },
});
