import { bootStepLabel, type BootStep } from '../contract/boot-timeline.js';

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * A boot timeline as aligned lines: when each step happened (seconds since
 * the start began), how long it took after the step before, what it is and
 * whose clock said so. Labels come from the contract; an unknown step is
 * shown by its name, stripped of anything but plain characters.
 */
export function formatBootTimeline(steps: readonly BootStep[], indent = '  '): string[] {
  const rows = steps.map((s, i) => {
    const label = bootStepLabel(s.step).replace(/[^\x20-\x7e]/g, '?');
    const delta = i ? s.atMs - steps[i - 1]!.atMs : s.atMs;
    return { at: secs(s.atMs), delta: `+${secs(Math.max(0, delta))}`, label, source: s.source };
  });
  const w = (k: 'at' | 'delta' | 'label') => Math.max(0, ...rows.map((r) => r[k].length));
  const [wa, wd, wl] = [w('at'), w('delta'), w('label')];
  return rows.map((r) => `${indent}${r.at.padStart(wa)}  ${r.delta.padStart(wd)}  ${r.label.padEnd(wl)}  ${r.source}`);
}
