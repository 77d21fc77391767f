import type { StorageDriver } from "../../registry/storage/driver.js";
import { layout } from "../../registry/store/layout.js";
import { Store } from "../../registry/store/store.js";

/** A store over `driver` with no cached listings: what a test reads is what storage holds. */
export function storeOf(driver: StorageDriver): Store {
  return new Store(driver, { cacheTtlMs: 0 });
}

/** The storage key of a blob (for hooks that watch a driver's calls). */
export function blobKey(hex: string): string {
  return layout.blob(hex);
}

/** One GC run over `driver` (the registry runs it through its store the same way). */
export function gcOn(driver: StorageDriver, options: Parameters<Store["gc"]>[0]) {
  return storeOf(driver).gc(options);
}
