import type { BootTestReport, BootTestStart } from "./boot-test.js";
import type { CheckResult } from "./checks.js";

/** One line per check, as `templar test` and `templar build --test` print them. */
export function checkLine(result: CheckResult): string {
  const status = { ok: "ok", failed: "FAILED", skipped: "skipped" }[result.status];
  return `  ${status.padEnd(8)} ${result.name.padEnd(9)} ${result.detail}`;
}

/** The line before the checks: what was booted and how the host configured it. */
export function headerLine(report: BootTestStart): string {
  return `${report.template}: ${report.os}, ${report.init}, eth0 ${report.address} from ${report.network}`;
}

/** The line after them. */
export function summaryLine(report: BootTestReport): string {
  const skipped = report.checks.filter((c) => c.status === "skipped").length;
  const counted = `${report.checks.length} checks${skipped ? `, ${skipped} skipped` : ""}`;
  const verdict = report.ok ? "passed" : `FAILED (${report.failed.join(", ")})`;
  return `${report.template}: boot test ${verdict}: ${counted} in ${report.seconds.toFixed(1)} s`;
}
