import type { StorageDriver } from "../../registry/storage/driver.js";

/** One storage call as a hook sees it. */
export interface Call {
  method: string;
  /** The first argument: a key, a blob's hex, a prefix (or undefined). */
  arg: unknown;
  /** "after": the call returned `result` (for a listing: before its first item). */
  phase: "before" | "after";
  result?: unknown;
}

/**
 * A storage driver that lets a test stop a chosen call before or after it reaches `inner`, to drive one
 * exact interleaving of two actors (a GC run and a push, say). The hook may await a gate.
 */
export function hooked(inner: StorageDriver, hook: (call: Call) => Promise<void> | void): StorageDriver {
  return new Proxy(inner, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const method = String(prop);
      return (...args: unknown[]) => {
        const arg = args[0];
        if (LISTINGS.has(method)) {
          return (async function* () {
            await hook({ method, arg, phase: "before" });
            yield* value.apply(target, args) as AsyncIterable<unknown>;
          })();
        }
        return (async () => {
          await hook({ method, arg, phase: "before" });
          const result = await value.apply(target, args);
          await hook({ method, arg, phase: "after", result });
          return result;
        })();
      };
    },
  });
}

/** The driver methods that return an AsyncIterable; every other one returns a promise. */
const LISTINGS = new Set(["list"]);

/** A promise with its resolve, for gates between actors. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
