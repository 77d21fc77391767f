import { html } from "hono/html";
import type { SignerInfo } from "../signers.js";
import type { Html } from "./layout.js";
import { shellWord } from "./shell.js";

/** Where hosts keep the maintainers' public keys (templar pull's default --keyring). */
export const HOST_KEYRING = "/etc/templar/trusted.asc";

/** "FPR (user id)" with the key link, or the issuer the signature names, or "unsigned". */
export function signerHtml(signer: SignerInfo | null): Html {
  if (!signer) return html`<span class="muted">unsigned</span>`;
  if (!signer.fingerprint)
    return html`key <code class="digest">${signer.issuer}</code> <span class="muted">(not in this registry's push policy: not checked here)</span>`;
  return html`<code class="digest">${signer.fingerprint}</code> ${signer.userId ?? ""} · <a href="${signer.keyHref}">public key</a>`;
}

/** In a table cell: the user id first, then the key's fingerprint, small, on its own line. */
export function signerCell(signer: SignerInfo | null): Html {
  if (!signer) return html`<span class="muted">unsigned</span>`;
  if (!signer.fingerprint)
    return html`<span class="muted">key</span> <code class="digest">${signer.issuer}</code>`;
  return html`${signer.userId ?? ""}<br><a href="${signer.keyHref}" title="public key"><code class="digest">${signer.fingerprint}</code></a>`;
}

/** The step before the first pull: put the maintainer's key into the host's keyring. */
export function keyringStep(origin: string, signer: SignerInfo | null): Html {
  if (!signer) return html`# unsigned: templar pull needs --allow-unsigned\n`;
  if (!signer.fingerprint)
    return html`# first, add the maintainer's public key (${signer.issuer}) to ${HOST_KEYRING}\n`;
  return html`# once per host: trust the maintainer's key ${signer.fingerprint}${signer.userId ? ` (${signer.userId})` : ""}
install -d /etc/templar
curl -fsS ${shellWord(`${origin}${signer.keyHref}`)} >> ${HOST_KEYRING}
`;
}
