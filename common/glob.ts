const cache = new Map<string, RegExp>();

/**
 * Name globs as token scopes and `--filter` write them: `*` matches any run of characters, `?`
 * one character, everything else itself. Template names never contain '/'.
 */
export function globMatch(glob: string, name: string): boolean {
  let re = cache.get(glob);
  if (!re) {
    const body = glob
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".");
    re = new RegExp(`^${body}$`);
    if (cache.size > 1000) cache.clear();
    cache.set(glob, re);
  }
  return re.test(name);
}
