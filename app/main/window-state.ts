/**
 * The window's size and place, kept between runs (in electron-store), and
 * put back only where a display still shows it.
 */
export interface Bounds {
  x?: number;
  y?: number;
  width: number;
  height: number;
}

export interface KeyValueStore {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
}

export const DEFAULT_BOUNDS: Bounds = { width: 1100, height: 760 };

function isBounds(v: unknown): v is Bounds {
  const b = v as Bounds;
  return !!b && typeof b === 'object' && Number.isFinite(b.width) && Number.isFinite(b.height) && b.width >= 400 && b.height >= 300;
}

/** Saved bounds when they are sane and at least 100x50 px of them is on a display; else the default size. */
export function restoreBounds(store: KeyValueStore, displays: { x: number; y: number; width: number; height: number }[]): Bounds {
  const saved = store.get('window.bounds');
  if (!isBounds(saved)) return { ...DEFAULT_BOUNDS };
  if (saved.x === undefined || saved.y === undefined) return { width: saved.width, height: saved.height };
  const visible = displays.some(
    (d) =>
      Math.min(saved.x! + saved.width, d.x + d.width) - Math.max(saved.x!, d.x) >= 100 &&
      Math.min(saved.y! + saved.height, d.y + d.height) - Math.max(saved.y!, d.y) >= 50,
  );
  return visible ? { x: saved.x, y: saved.y, width: saved.width, height: saved.height } : { width: saved.width, height: saved.height };
}

export function saveBounds(store: KeyValueStore, b: Bounds): void {
  if (isBounds(b)) store.set('window.bounds', { x: b.x, y: b.y, width: b.width, height: b.height });
}
