import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { sha256Hex } from "../../common/digest.js";

/** The SPDX 2.3 JSON schema, exactly as the specification publishes it (see test/fixtures/schemas). */
const SCHEMA = join(import.meta.dirname, "..", "fixtures", "schemas", "spdx-2.3.schema.json");
const SCHEMA_SHA256 = "239208b7ac287b3cf5d9a9af23f9d69863971102a5e1587a27a398b43490b89b";

/** Validates SPDX 2.3 JSON text: null when valid, else the schema's complaints. */
export function spdxValidator(): (text: string) => string | null {
  const bytes = readFileSync(SCHEMA);
  if (sha256Hex(bytes) !== SCHEMA_SHA256)
    throw new Error(`${SCHEMA} is not the SPDX 2.3 schema it should be`);
  // The schema is draft-07 and uses no formats; strict off: it has keywords ajv does not know.
  const validate = new Ajv({ strict: false, allErrors: true }).compile(JSON.parse(bytes.toString("utf8")));
  return (text) =>
    validate(JSON.parse(text))
      ? null
      : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`).join("; ");
}
