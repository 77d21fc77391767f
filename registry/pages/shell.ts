/**
 * One word of a POSIX shell command the pages print for copy and paste: as it is when it holds
 * only characters no shell treats specially (so the usual command stays readable), else in
 * single quotes, each ' written as '\''. Everything a page puts into a command goes through
 * here, whatever validated it before: a pasted command runs with root's rights on a host.
 */
const PLAIN = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function shellWord(value: string): string {
  if (PLAIN.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
