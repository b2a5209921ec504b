import { z } from 'zod';
import { ERROR_CODES } from './errors.js';
import { ACCELERATORS, DRIVER_SETTINGS } from './settings-values.js';

/**
 * `host.doctor`: which drivers can run the VM on this host and why the
 * others cannot, the accelerator, and which setting choices the host can
 * use (what `berth doctor --json` prints, and what the Troubleshoot and
 * Settings screens show). It judges the host, not the VM: the front end's
 * gateway answers it from the host it runs on, with or without an engine.
 */

const ErrorInfo = z.object({ code: z.enum(ERROR_CODES), message: z.string(), hint: z.string(), details: z.string().optional() });
const DriverNameSchema = z.enum(['qemu', 'vfkit', 'hyperv']);

export const DriverCheckSchema = z.object({
  driver: DriverNameSchema,
  usable: z.boolean(),
  /** One line: what was found, or why it cannot be used. */
  summary: z.string(),
  problem: ErrorInfo.optional(),
  /** Usable, but worse than it could be (TCG instead of KVM, say). */
  warnings: z.array(z.string()),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
});

/** Whether a setting's choice can work on this host, and if not, why (in doctor's words). */
export const ChoiceSchema = z.object({ usable: z.boolean(), reason: z.string().optional() });

export const DoctorSchema = z.object({
  host: z.object({ platform: z.string(), arch: z.string(), release: z.string(), os: z.string() }),
  /** The accelerator probe's last verdict on this host, if any. */
  lastProbe: z.object({ accel: z.string(), reason: z.string() }).optional(),
  drivers: z.array(DriverCheckSchema),
  /** The driver `auto` would pick, or null when none is usable. */
  recommended: DriverNameSchema.nullable(),
  setting: z.enum(DRIVER_SETTINGS),
  /** The driver the next start uses, or null when it cannot run. */
  selected: DriverNameSchema.nullable(),
  live: z.object({ driver: z.string(), reason: z.string().optional(), state: z.string() }).optional(),
  rosetta: z.object({ setting: z.boolean(), usable: z.boolean(), note: z.string().optional() }).optional(),
  overrides: z.record(z.string(), z.string()).optional(),
  /** The setting choices this host can use: each driver, accelerator and Rosetta. */
  choices: z
    .object({
      driver: z.record(z.enum(DRIVER_SETTINGS), ChoiceSchema),
      accel: z.record(z.enum(ACCELERATORS), ChoiceSchema),
      rosetta: ChoiceSchema,
    })
    .optional(),
  ok: z.boolean(),
});
export type DoctorView = z.infer<typeof DoctorSchema>;

/** Methods a front end's gateway answers itself (the host's, not the engine's); an engine refuses them. */
export const hostMethods = {
  'host.doctor': { params: z.object({}).strict(), result: DoctorSchema },
} as const;

export const FRONT_END_METHODS: readonly string[] = Object.keys(hostMethods);
