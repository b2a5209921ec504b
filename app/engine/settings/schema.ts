import os from 'node:os';
import { z } from 'zod';

/**
 * Engine settings of one instance. Every field has a default, so an empty
 * file (or none) is a valid configuration. Unknown keys are refused: a typo
 * must not be silently ignored.
 */
export const ACCELERATORS = ['auto', 'kvm', 'tcg', 'hvf'] as const;

const hostCpus = () => Math.max(1, os.cpus().length);
const hostMemoryMiB = () => Math.floor(os.totalmem() / (1024 * 1024));

export const SettingsSchema = z
  .object({
    cpus: z
      .number()
      .int()
      .min(1)
      .refine((n) => n <= hostCpus(), {
        message: `must not exceed the host's CPU count (${hostCpus()})`,
      })
      .default(() => Math.min(2, hostCpus())),
    memoryMiB: z
      .number()
      .int()
      .min(512, 'must be at least 512 MiB')
      .refine((n) => n <= hostMemoryMiB() - 256, {
        message: `must leave the host at least 256 MiB (the host has ${hostMemoryMiB()} MiB)`,
      })
      .default(() => Math.min(2048, Math.max(512, Math.floor(hostMemoryMiB() / 4)))),
    diskGiB: z.number().int().min(4, 'must be at least 4 GiB').max(4096, 'must be at most 4096 GiB').default(64),
    accel: z.enum(ACCELERATORS).default('auto'),
  })
  .strict();

export type Settings = z.infer<typeof SettingsSchema>;

/** A partial update as sent by the CLI or the UI. */
export const SettingsPatchSchema = z
  .object({
    cpus: z.number().int(),
    memoryMiB: z.number().int(),
    diskGiB: z.number().int(),
    accel: z.enum(ACCELERATORS),
  })
  .partial()
  .strict();

export type SettingsPatch = z.infer<typeof SettingsPatchSchema>;

/** Settings whose change needs a VM restart to take effect. */
export const RESTART_KEYS: readonly (keyof Settings)[] = ['cpus', 'memoryMiB', 'diskGiB', 'accel'];

export function defaultSettings(): Settings {
  return SettingsSchema.parse({});
}

/** One line per problem: "memoryMiB: must be at least 512 MiB". */
export function describeIssues(err: z.ZodError): string {
  return err.issues
    .map((i) => {
      const where = i.path.length ? i.path.join('.') : '(top level)';
      return `${where}: ${i.message}`;
    })
    .join('; ');
}
