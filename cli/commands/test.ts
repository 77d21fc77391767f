import {
  type BootTestReport,
  bootTest,
  DEFAULT_TEST_TIMEOUT,
  failureLine,
} from "../../builder/boot-test/boot-test.js";
import { checkLine, headerLine, summaryLine } from "../../builder/boot-test/format.js";
import { resolveTargets } from "../../builder/boot-test/targets.js";
import { UserError, usageError } from "../../common/errors.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";

const help = `Usage: templar test <template | manifest | out-dir | rootfs-dir>... [options]

Boots each template the way a container host starts it and checks what the host needs. The
template is extracted (as pct extracts it) into a throwaway directory, the host's network
configuration for its distro is written (a static address for eth0: /etc/network/interfaces
for Debian, a NetworkManager keyfile, ifcfg or systemd-networkd file for RHEL-likes,
/etc/conf.d/net for Gentoo/openrc), /etc/machine-id is removed (first boot, as after
pct create), and it boots in a privileged systemd-nspawn container with a private network:
one veth pair, eth0 inside. The template itself is never changed. Checks, one line each:

  boot      the init system finishes booting (systemd: running or degraded)
  units     no unit (openrc: service) failed
  network   eth0 gets the static address and default route the host wrote
  ping      the address answers ping from the host over the veth pair
  sshd      where the template has sshd: port 22 answers, with host keys made at this boot
            by exactly one ssh-keygen run
  dbus      where the template has D-Bus: hostnamectl, timedatectl and loginctl answer
  packages  the package manager's offline self-check (apt-get check and dpkg --audit,
            rpm -Va --nofiles, portageq)

Exits 1 when a check fails, naming it, and when a template cannot be booted here (not root,
systemd-nspawn missing, an init for another CPU): that is an error, never a pass.
Needs root, systemd-nspawn (Debian: systemd-container), nsenter, ip and ping.

Options:
  --timeout SECONDS   time from the container's start for boot, network and sshd (default ${DEFAULT_TEST_TIMEOUT})
  --json              print the reports as JSON on stdout
  -v, --verbose       show the container's console output
`;

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("test", argv, {
    timeout: { type: "string" },
    json: { type: "boolean" },
    verbose: { type: "boolean", short: "v" },
  });
  if (positionals.length === 0)
    throw usageError("test: expected a template file, manifest or directory (see 'templar test --help')");
  let timeoutSeconds: number | undefined;
  if (values.timeout !== undefined) {
    timeoutSeconds = Number(values.timeout);
    if (!/^\d+$/.test(values.timeout) || timeoutSeconds < 1)
      throw usageError(`test: --timeout: expected whole seconds, got ${JSON.stringify(values.timeout)}`);
  }
  const json = Boolean(values.json);
  const out = (line: string) => {
    if (!json) process.stdout.write(`${line}\n`);
  };
  const targets = (await Promise.all(positionals.map(resolveTargets))).flat();

  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const reports: BootTestReport[] = [];
  try {
    for (const target of targets) {
      if (!json) process.stderr.write(`${target.label}: booting...\n`);
      const report = await bootTest(target, {
        timeoutSeconds,
        signal: controller.signal,
        onLine: values.verbose && !json ? (line) => process.stderr.write(`  | ${line}\n`) : undefined,
        onStart: (info) => out(headerLine(info)),
        onCheck: (result) => out(checkLine(result)),
      });
      out(summaryLine(report));
      reports.push(report);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (json) process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
  const bad = reports.find((r) => !r.ok);
  if (bad) throw new UserError(`${bad.template}: ${failureLine(bad)}`);
  return 0;
}

export const command: Command = { help, run };
