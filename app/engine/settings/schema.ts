import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ACCELERATORS, DRIVER_SETTINGS, SHARE_MECHANISM_SETTINGS } from '../../contract/settings-values.js';
import { describeIssues, portNumber } from '../../contract/issues.js';
import { syncPathProblem } from './sync-paths.js';
import { REGISTRY_RESTART_KEYS, registryPatchShape, registrySettingsShape } from './registry-schema.js';

/**
 * Engine settings of one instance. Every field has a default, so an empty
 * file (or none) is a valid configuration. Unknown keys are refused: a typo
 * must not be silently ignored.
 */
const hostCpus = () => Math.max(1, os.cpus().length);
const hostMemoryMiB = () => Math.floor(os.totalmem() / (1024 * 1024));

/** The same rule and message as the contract's (contract/issues.ts): one message on every path. */
const Port = portNumber();

/** A port forwarded by hand (`berth port add`), kept while the VM runs. */
export const ManualPortSchema = z
  .object({
    hostPort: Port,
    guestPort: Port,
    proto: z.enum(['tcp', 'udp']).default('tcp'),
    hostIp: z
      .string()
      .refine((ip) => net.isIP(ip) !== 0, { message: 'must be an IPv4 or IPv6 address' })
      .optional(),
  })
  .strict();

/**
 * Guest folders a share must not cover: the guest's own system, Docker's
 * data, Berth's run state. (A share of /tmp would hide the guest's /tmp.)
 */
const GUEST_SYSTEM_EXACT = ['/', '/tmp', '/var', '/home', '/mnt', '/opt', '/srv', '/root/.ssh'];
const GUEST_SYSTEM_PREFIX = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib64',
  '/proc',
  '/run',
  '/sbin',
  '/sys',
  '/usr',
  '/var/lib/docker',
  '/var/lib/containerd',
  '/var/lib/berth',
  '/var/run',
  '/var/log',
  '/mnt/data',
];

export function guestPathProblem(p: string): string | undefined {
  if (!p.startsWith('/')) return 'must be an absolute path';
  const norm = p.replace(/\/+$/, '') || '/';
  if (norm.split('/').some((c) => c === '..' || c === '.')) return 'must not contain . or .. components';
  if (GUEST_SYSTEM_EXACT.includes(norm)) return `${norm} is needed by the VM itself; share a folder inside it instead`;
  const hit = GUEST_SYSTEM_PREFIX.find((x) => norm === x || norm.startsWith(`${x}/`));
  return hit ? `${hit} belongs to the VM's system; pick another place` : undefined;
}

/** A folder of the host shared into the guest (at the same path unless guestPath says otherwise). */
export const ShareSchema = z
  .object({
    hostPath: z
      .string()
      .min(1)
      .refine((p) => path.isAbsolute(p), { message: 'must be an absolute path' }),
    guestPath: z
      .string()
      .superRefine((p, ctx) => {
        const why = guestPathProblem(p);
        if (why) ctx.addIssue({ code: 'custom', message: why });
      })
      .optional(),
    readOnly: z.boolean().optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.guestPath === undefined && path.sep === '/') {
      const why = guestPathProblem(s.hostPath);
      if (why) ctx.addIssue({ code: 'custom', path: ['hostPath'], message: `${why} (or set guestPath)` });
    }
  });

/** The home folder, and the OS temp folder where it is not the guest's /tmp (macOS). */
export function defaultShares(): z.infer<typeof ShareSchema>[] {
  const out = [{ hostPath: os.homedir() }];
  const tmp = os.tmpdir();
  if (!guestPathProblem(tmp) && !tmp.startsWith(`${os.homedir()}/`)) out.push({ hostPath: tmp });
  return out.filter((s) => !guestPathProblem(s.hostPath));
}

/**
 * A folder kept in sync between the host and the guest's own disk (`berth
 * sync add`): it must lie inside a shared folder, and synced folders do not
 * nest (checked against the shares in SettingsSchema).
 */
export const SyncSettingSchema = z
  .object({
    hostPath: z
      .string()
      .min(1)
      .refine((p) => path.isAbsolute(p), { message: 'must be an absolute path' }),
  })
  .strict();

export const SettingsSchema = z
  .object({
    // Limits as min/max (not refinements), so the key table (client/settings-keys.ts) can show them.
    cpus: z
      .number()
      .int()
      .min(1, 'must be at least 1')
      .max(hostCpus(), `must not exceed the host's CPU count (${hostCpus()})`)
      .default(() => Math.min(2, hostCpus()))
      .describe('virtual CPUs of the VM'),
    memoryMiB: z
      .number()
      .int()
      .min(512, 'must be at least 512 MiB')
      .max(hostMemoryMiB() - 256, `must leave the host at least 256 MiB (the host has ${hostMemoryMiB()} MiB)`)
      .default(() => Math.min(2048, Math.max(512, Math.floor(hostMemoryMiB() / 4))))
      .describe("the VM's memory"),
    diskGiB: z
      .number()
      .int()
      .min(4, 'must be at least 4 GiB')
      .max(4096, 'must be at most 4096 GiB')
      .default(64)
      .describe('the largest size of the data disk (containers, images, volumes); it only grows'),
    accel: z.enum(ACCELERATORS).default('auto').describe("QEMU's accelerator"),
    driver: z.enum(DRIVER_SETTINGS).default('auto').describe('the hypervisor driver (`berth doctor` shows which work here)'),
    /**
     * Apple silicon: run amd64 (x86_64) binaries in the arm64 VM through
     * Rosetta. Takes effect with the vfkit driver and an arm64 guest; with
     * another driver, a guest of another architecture, or no Rosetta on the
     * Mac, the VM starts without it and `berth status` and `berth doctor`
     * say why (vm-spec.ts rosettaPlan).
     */
    rosetta: z.boolean().default(false).describe('run amd64 binaries through Rosetta (Apple silicon, vfkit)'),
    /**
     * Rest the VM after this many minutes with nothing in use (no running
     * container, no docker or forwarded connection, no shell); the next
     * docker connection wakes it. 0 = never. Fractions are allowed.
     */
    idleMinutes: z
      .number()
      .min(0, 'must be 0 (never rest) or more minutes')
      .max(1440, 'must be at most 1440 minutes (a day)')
      .default(15)
      .describe('rest the VM after this many idle minutes (0: never); the next docker command wakes it'),
    /** Where forwarded ports listen on the host: loopback only, or every interface. */
    portBind: z.enum(['loopback', 'all']).default('loopback').describe('where forwarded ports listen on the host'),
    shareMechanism: z.enum(SHARE_MECHANISM_SETTINGS).default('auto').describe('how shared folders reach the VM'),
    ports: z
      .array(ManualPortSchema)
      .max(1000)
      .default([])
      .refine((ps) => new Set(ps.map((p) => `${p.proto}/${p.hostPort}`)).size === ps.length, {
        message: 'each host port (and protocol) can be forwarded only once',
      })
      .describe('manual port forwards (`berth port add`)'),
    /** Folders of the host mounted in the guest (live: no restart needed). */
    shares: z
      .array(ShareSchema)
      .max(64)
      .default(defaultShares)
      .refine((ss) => new Set(ss.map((s) => s.guestPath ?? s.hostPath)).size === ss.length, {
        message: 'two shares cannot use the same guest path',
      })
      .describe('shared folders (`berth share add`)'),
    /** Folders inside shares kept in sync with a copy on the guest's disk (live). */
    sync: z.array(SyncSettingSchema).max(16, 'at most 16 folders can be synced').default([]).describe('synced folders (`berth sync add`)'),
    ...registrySettingsShape,
  })
  .strict()
  .superRefine((s, ctx) => {
    const all = s.sync.map((x) => path.resolve(x.hostPath));
    s.sync.forEach((x, i) => {
      if (all.indexOf(all[i]!) !== i) {
        ctx.addIssue({ code: 'custom', path: ['sync', i, 'hostPath'], message: `${x.hostPath} is listed twice` });
        return;
      }
      const why = syncPathProblem(
        x.hostPath,
        s.shares,
        all.filter((_, j) => j !== i),
      );
      if (why) ctx.addIssue({ code: 'custom', path: ['sync', i, 'hostPath'], message: `${why.message} (${why.hint})` });
    });
  });

export type Settings = z.infer<typeof SettingsSchema>;

/** A partial update as sent by the CLI or the UI. */
export const SettingsPatchSchema = z
  .object({
    cpus: z.number().int(),
    memoryMiB: z.number().int(),
    diskGiB: z.number().int(),
    accel: z.enum(ACCELERATORS),
    driver: z.enum(DRIVER_SETTINGS),
    rosetta: z.boolean(),
    portBind: z.enum(['loopback', 'all']),
    idleMinutes: z.number(),
    shareMechanism: z.enum(SHARE_MECHANISM_SETTINGS),
    ports: z.array(z.unknown()),
    shares: z.array(z.unknown()),
    sync: z.array(z.unknown()),
    ...registryPatchShape,
  })
  .partial()
  .strict();

export type SettingsPatch = z.infer<typeof SettingsPatchSchema>;

/** Settings whose change needs a VM restart to take effect. */
export const RESTART_KEYS: readonly (keyof Settings)[] = [
  'cpus',
  'memoryMiB',
  'diskGiB',
  'accel',
  'driver',
  'rosetta',
  'shareMechanism',
  ...REGISTRY_RESTART_KEYS,
];

type NumberKey = 'cpus' | 'memoryMiB' | 'diskGiB' | 'idleMinutes';
const NUMBER_KEYS: readonly NumberKey[] = ['cpus', 'memoryMiB', 'diskGiB', 'idleMinutes'];

/**
 * The ranges of the number settings on this host, read from the schema
 * itself (so a front end shows the rule the engine checks). `diskFloorGiB`:
 * the data disk's size, below which the disk cannot shrink.
 */
export function settingsLimits(diskFloorGiB?: number): Record<NumberKey, { min: number; max: number }> & { host: { cpus: number; memoryMiB: number } } {
  const props = (
    z.toJSONSchema(SettingsSchema, { io: 'input', unrepresentable: 'any' }) as { properties: Record<string, { minimum?: number; maximum?: number }> }
  ).properties;
  const range = (k: NumberKey) => ({ min: props[k]!.minimum!, max: props[k]!.maximum! });
  const out = Object.fromEntries(NUMBER_KEYS.map((k) => [k, range(k)])) as Record<NumberKey, { min: number; max: number }>;
  if (diskFloorGiB !== undefined) out.diskGiB.min = Math.min(out.diskGiB.max, Math.max(out.diskGiB.min, diskFloorGiB));
  return { ...out, host: { cpus: hostCpus(), memoryMiB: hostMemoryMiB() } };
}

export function defaultSettings(): Settings {
  return SettingsSchema.parse({});
}

/** One line per problem, in the words every path uses (contract/issues.ts). */
export { describeIssues };
