import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Tests run real tools (tar, zstd, debootstrap, gpg, servers); two cores do not gain from more workers.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
