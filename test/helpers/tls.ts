import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A throwaway certificate authority and a server certificate it signed, as PEM files. */
export interface TestCa {
  dir: string;
  /** The CA certificate: what clients trust (curl --cacert, skopeo --cert-dir, incus remote add). */
  caCert: string;
  caKey: string;
  /** The server's certificate (for 127.0.0.1 and localhost) and key: templar serve --tls-cert/--tls-key. */
  cert: string;
  key: string;
}

/** Makes a CA in `dir` and a server certificate for 127.0.0.1 and localhost, with real openssl. */
export async function makeTestCa(dir: string): Promise<TestCa> {
  const ca: TestCa = {
    dir,
    caCert: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    cert: join(dir, "server.crt"),
    key: join(dir, "server.key"),
  };
  await run("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
    ...["-keyout", ca.caKey, "-out", ca.caCert, "-days", "2", "-subj", "/CN=templar test CA"],
    ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
  ]);
  await issueServerCert(ca);
  return ca;
}

/** (Re)issues the server certificate and key in place, as a renewal would; returns its SHA-256 fingerprint. */
export async function issueServerCert(ca: TestCa, into: { cert: string; key: string } = ca): Promise<string> {
  const csr = join(ca.dir, "server.csr");
  const ext = join(ca.dir, "server.ext");
  await writeFile(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  await run("openssl", [
    ...["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
    ...["-keyout", into.key, "-out", csr, "-subj", "/CN=127.0.0.1"],
  ]);
  await run("openssl", [
    ...["x509", "-req", "-in", csr, "-CA", ca.caCert, "-CAkey", ca.caKey, "-CAcreateserial"],
    ...["-out", into.cert, "-days", "2", "-extfile", ext],
  ]);
  return new X509Certificate(await readFile(into.cert)).fingerprint256;
}

/** GET over HTTPS trusting only the test CA; gives the status and the server certificate's fingerprint. */
export async function httpsGet(
  url: string,
  caCert: string,
): Promise<{ status: number; body: string; fingerprint: string }> {
  const ca = await readFile(caCert);
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false }, (res) => {
      const fingerprint = (res.socket as import("node:tls").TLSSocket).getPeerCertificate().fingerprint256;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, fingerprint }));
    });
    req.on("error", reject);
    req.end();
  });
}
