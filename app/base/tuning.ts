import { z } from 'zod';
import { BerthError } from '../contract/errors.js';

/**
 * The engine's environment overrides (BERTH_*), read once where a process
 * starts (the engine in daemon.ts, `berth doctor` in client/doctor.ts, the
 * image build script) and handed down as a typed object: no other module
 * reads them, and tests pass a Tuning instead of changing process.env.
 * A bad value is refused here, naming the variable and what it takes,
 * never turned into a NaN timeout or silently ignored.
 *
 * Not here: BERTH_HOME, BERTH_CACHE and BERTH_INSTANCE say which Berth a
 * process is (paths.ts, the CLI and Electron main read them; every process
 * needs them before anything else, and front ends pass them on to the
 * engine they start), and BERTH_RENDERER_DIR is the CLI dashboard's own.
 */

interface Override<S extends z.ZodType> {
  /** The variable. */
  env: string;
  schema: S;
  /** What it takes, for errors and listings: "kvm, tcg or hvf". */
  takes: string;
  /** What it is for, one line. */
  doc: string;
}

const def = <S extends z.ZodType>(env: string, schema: S, takes: string, doc: string): Override<S> => ({ env, schema, takes, doc });

/** Whole milliseconds; a day at most, so no timer overflows. */
const ms = (min: number) => z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(86_400_000));
const MS = 'a whole number of milliseconds, 1 or more';
/** 1 or 0, off when unset. */
const onOff = () =>
  z
    .enum(['0', '1'])
    .transform((v) => v === '1')
    .default(false);

const GUEST_ARCH_ALIASES = { x86_64: 'x86_64', amd64: 'x86_64', aarch64: 'aarch64', arm64: 'aarch64' } as const;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const TUNING = {
  bootTimeoutMs: def('BERTH_BOOT_TIMEOUT_MS', ms(1).optional(), MS, 'how long the guest may take to answer on ssh (default 60000, 240000 under TCG)'),
  dockerTimeoutMs: def(
    'BERTH_DOCKER_TIMEOUT_MS',
    ms(1).optional(),
    MS,
    'how long dockerd may take to answer once the guest is up (default 60000, 240000 under TCG)',
  ),
  syncStartTimeoutMs: def(
    'BERTH_SYNC_START_TIMEOUT_MS',
    ms(1).default(120_000),
    MS,
    "how long the synced folders' first copy may take at start (default 120000)",
  ),
  syncStopTimeoutMs: def(
    'BERTH_SYNC_STOP_TIMEOUT_MS',
    ms(1).default(60_000),
    MS,
    'how long synced folders may take to flush to the host at stop (default 60000)',
  ),
  stopTimeoutMs: def('BERTH_STOP_TIMEOUT_MS', ms(1).default(60_000), MS, 'how long the guest may take to power off before it is forced off (default 60000)'),
  recoveryDelayMs: def(
    'BERTH_RECOVERY_DELAY_MS',
    ms(0).default(2000),
    'a whole number of milliseconds',
    'the wait before a VM that died under a running engine is started again (default 2000)',
  ),
  hungGuestMs: def(
    'BERTH_HUNG_GUEST_MS',
    ms(1).optional(),
    MS,
    'how long a running guest may leave ssh unanswered while its VM process runs before the VM is restarted (default 120000, 300000 under TCG)',
  ),
  kvmProbeTimeoutMs: def(
    'BERTH_KVM_PROBE_TIMEOUT_MS',
    ms(1).default(8000),
    MS,
    'how long the KVM probe boot may take before KVM is judged hung (default 8000)',
  ),
  accel: def(
    'BERTH_ACCEL',
    z.enum(['kvm', 'tcg', 'hvf']).optional(),
    'kvm, tcg or hvf',
    'the accelerator, over the accel setting and the probe (default: the setting)',
  ),
  shareMechanism: def(
    'BERTH_SHARE_MECHANISM',
    z.enum(['auto', 'virtiofs', 'sshfs']).optional(),
    'auto, virtiofs or sshfs',
    'how folders are shared, over the shareMechanism setting (default: the setting)',
  ),
  boot: def(
    'BERTH_BOOT',
    z.enum(['kernel', 'efi', 'vhdx']).optional(),
    'kernel, efi or vhdx',
    "what the VM boots, one of the driver's boot modes (default: the driver's fastest)",
  ),
  guestArch: def(
    'BERTH_GUEST_ARCH',
    z
      .enum(['x86_64', 'amd64', 'aarch64', 'arm64'])
      .transform((a) => GUEST_ARCH_ALIASES[a])
      .optional(),
    'x86_64 (amd64) or aarch64 (arm64)',
    "the guest's architecture; the other one than the host's is emulated (default: the host's)",
  ),
  qemu: def('BERTH_QEMU', z.string().optional(), 'a QEMU binary (name on PATH or path)', 'the QEMU binary (default qemu-system-<guest arch> on PATH)'),
  vfkit: def('BERTH_VFKIT', z.string().optional(), 'a vfkit binary (name on PATH or path)', 'the vfkit binary (default vfkit on PATH)'),
  virtiofsd: def(
    'BERTH_VIRTIOFSD',
    z.string().optional(),
    'a virtiofsd binary (name on PATH or path)',
    "the virtiofsd binary (default: the distribution's, then PATH)",
  ),
  powershell: def(
    'BERTH_POWERSHELL',
    z.string().optional(),
    'powershell.exe or pwsh.exe (or a path)',
    'the PowerShell that runs the Hyper-V scripts (default powershell.exe)',
  ),
  hypervSwitch: def(
    'BERTH_HYPERV_SWITCH',
    z.string().optional(),
    'the name of a Hyper-V virtual switch',
    'the Hyper-V virtual switch (default "Default Switch")',
  ),
  imageDir: def(
    'BERTH_IMAGE_DIR',
    z.string().optional(),
    'a folder holding a built guest image',
    'a prebuilt guest image to boot instead of the cache (what a release ships)',
  ),
  aptSources: def('BERTH_APT_SOURCES', z.string().optional(), 'an apt sources file', "the apt sources the guest image is built from (default: the host's own)"),
  qemuHostForwards: def(
    'BERTH_QEMU_HOSTFWD',
    z
      .string()
      .transform((s) => s.split(',').filter(Boolean))
      .pipe(z.array(z.string().regex(/^\d{1,5}:\d{1,5}$/)))
      .default([]),
    'host:guest port pairs, comma-separated (28080:18080,...)',
    "QEMU's own loopback port forwards, for benchmarks (default none)",
  ),
  hostRelay: def(
    'BERTH_HOST_RELAY',
    onOff(),
    '1 or 0',
    "1: QEMU guests reach the host's loopback through the engine's relay, as vfkit and Hyper-V guests do (tests; default 0)",
  ),
  logLevel: def('BERTH_LOG_LEVEL', z.enum(LOG_LEVELS).default('info'), LOG_LEVELS.join(', '), "the engine log's level (default info)"),
  logStderr: def('BERTH_LOG_STDERR', onOff(), '1 or 0', '1 copies the engine log to stderr (default 0)'),
} as const;

type Shape = { [K in keyof typeof TUNING]: (typeof TUNING)[K]['schema'] };
const TuningSchema = z.object(Object.fromEntries(Object.entries(TUNING).map(([k, d]) => [k, d.schema])) as unknown as Shape);

/** Every override, parsed; absent ones are undefined or their default. */
export type Tuning = z.output<typeof TuningSchema>;
export type TuningKey = keyof Tuning;

/**
 * The overrides from an environment (default: this process's). An empty
 * variable counts as unset. Throws INVALID_SETTINGS naming the first bad
 * variable and what it takes.
 */
export function readTuning(env: Record<string, string | undefined> = process.env): Tuning {
  const raw: Record<string, string> = {};
  for (const [key, d] of Object.entries(TUNING)) {
    const v = env[d.env];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  const r = TuningSchema.safeParse(raw);
  if (r.success) return r.data;
  const key = r.error.issues[0]?.path[0] as TuningKey;
  const d = TUNING[key];
  throw new BerthError(
    'INVALID_SETTINGS',
    `${d.env}=${raw[key]} is not valid: it takes ${d.takes}`,
    `Set ${d.env} to ${d.takes}, or unset it. ${d.env}: ${d.doc}.`,
  );
}

/** readTuning, or the error it raised: for reports that must not fail on a bad override. */
export function tryReadTuning(env: Record<string, string | undefined> = process.env): Tuning | BerthError {
  try {
    return readTuning(env);
  } catch (err) {
    if (err instanceof BerthError) return err;
    throw err;
  }
}

/** No overrides: every default (tests, and tools that run no engine). */
export function defaultTuning(over: Partial<Tuning> = {}): Tuning {
  return { ...readTuning({}), ...over };
}

/** The overrides in effect (differing from the defaults), by variable: for diagnostics and `berth doctor`. */
export function tuningInEffect(t: Partial<Tuning>): Record<string, string> {
  const base = readTuning({});
  const out: Record<string, string> = {};
  for (const [key, d] of Object.entries(TUNING)) {
    const v = t[key as TuningKey];
    if (v === undefined || JSON.stringify(v) === JSON.stringify(base[key as TuningKey])) continue;
    out[d.env] = Array.isArray(v) ? v.join(',') : typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
  }
  return out;
}
