import { z } from 'zod';
import { BootStepSchema } from './boot-timeline.js';
import { BerthError, ERROR_CODES } from './errors.js';
import { dockerEvents, dockerMethods } from './contract-docker.js';
import { FRONT_END_METHODS, hostMethods } from './contract-doctor.js';
import { describeIssues, portNumber } from './issues.js';
import { ACCELERATORS, DRIVER_SETTINGS, SHARE_MECHANISM_SETTINGS } from './settings-values.js';
import { START_PHASES, VM_STATES } from './vm-states.js';

/**
 * The one typed contract between the engine and everything that drives it:
 * the CLI, Electron main, the renderer (through preload or the dashboard's
 * WebSocket). Methods, their params and results, events and error codes.
 * Params are validated with these schemas on the engine side; bad input
 * gets BAD_REQUEST and changes nothing.
 */
export const PROTOCOL_VERSION = 1;

/** A client and an engine of different Berth versions whose contracts differ. */
export function protocolMismatch(client: number, engine: number | undefined, engineVersion: string): BerthError {
  return new BerthError(
    'PROTOCOL_MISMATCH',
    engine === undefined
      ? `the running engine is an ${engineVersion} Berth that does not speak control protocol ${client}`
      : `the running engine (Berth ${engineVersion}) speaks control protocol ${engine}, this client speaks ${client}`,
    'An engine of another Berth version is running: stop it with the berth that started it (or quit the desktop app), then start again with this one. Containers and volumes are kept.',
  );
}

/** Longest request line the control server reads (a longer one is refused). */
export const MAX_MESSAGE_BYTES = 1 << 20;

export const ErrorInfoSchema = z.object({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  hint: z.string(),
  details: z.string().optional(),
});

export const AcceleratorSchema = z.enum(['kvm', 'tcg', 'hvf', 'hyperv']);

export const TimingsSchema = z
  .object({
    prepareMs: z.number(),
    imageMs: z.number(),
    bootMs: z.number(),
    guestMs: z.number(),
    dockerMs: z.number(),
    sharesMs: z.number(),
    socketMs: z.number(),
    totalMs: z.number(),
  })
  .partial();

export const ShareViewSchema = z.object({
  hostPath: z.string(),
  guestPath: z.string(),
  readOnly: z.boolean(),
  mechanism: z.enum(['virtiofs', 'reverse-sshfs']),
  /** Why this mechanism: how virtiofs is served, or why reverse sshfs (the fallback). */
  mechanismReason: z.string().optional(),
  state: z.enum(['mounting', 'mounted', 'error']),
  error: z.string().optional(),
  hint: z.string().optional(),
  /** The busiest folder in it that containers mount, when it changed by the thousand lately and is not synced. */
  busy: z.object({ folder: z.string(), changes: z.number(), minutes: z.number() }).optional(),
  /** With `busy`: why to sync that folder, in one line (`berth sync add FOLDER` does it). */
  advice: z.string().optional(),
});
export type ShareViewWire = z.infer<typeof ShareViewSchema>;

export const ShareSettingSchema = z.object({ hostPath: z.string(), guestPath: z.string().optional(), readOnly: z.boolean().optional() });

export const SyncConflictSchema = z.object({
  /** The host file both sides changed (absolute); it holds the host's version. */
  path: z.string(),
  /** Where the guest's version was kept (a host path; the same name in the guest). */
  guestCopy: z.string(),
  at: z.string(),
});
export type SyncConflictWire = z.infer<typeof SyncConflictSchema>;

export const SyncProblemSchema = z.object({
  /** The host path that is not in sync (absolute). */
  path: z.string(),
  /** Why, as the last try said (e.g. a link on the way, a name the host folds onto another). */
  problem: z.string(),
  attempts: z.number(),
  since: z.string(),
  nextTry: z.string(),
});
export type SyncProblemWire = z.infer<typeof SyncProblemSchema>;

export const SyncViewSchema = z.object({
  hostPath: z.string(),
  /** Where containers see the folder in the VM (the guest copy is mounted there). */
  guestPath: z.string(),
  /** The guest copy on the VM's data disk. */
  copyPath: z.string(),
  state: z.enum(['starting', 'copying', 'watching', 'syncing', 'error', 'stopped']),
  /** Whether the guest copy is mounted at guestPath right now. */
  mounted: z.boolean(),
  /** While the first copy to the guest runs. */
  initial: z.object({ files: z.number(), totalFiles: z.number(), bytes: z.number(), totalBytes: z.number() }).optional(),
  /** Files, folders and links in sync. */
  entries: z.number(),
  cycles: z.number(),
  lastSyncAt: z.string().optional(),
  lastCycleMs: z.number().optional(),
  /** Changes moved in the last cycle that moved anything. */
  lastChanges: z.object({ toGuest: z.number(), toHost: z.number(), deleted: z.number() }).optional(),
  conflicts: z.array(SyncConflictSchema),
  /** Paths that could not be brought in sync (refused or failing); tried again later, each on its own delay. */
  problems: z.array(SyncProblemSchema).optional(),
  error: z.string().optional(),
  hint: z.string().optional(),
});
export type SyncViewWire = z.infer<typeof SyncViewSchema>;

export const SyncSettingSchema = z.object({ hostPath: z.string() });

export const VmStatusSchema = z.object({
  instance: z.string(),
  state: z.enum(VM_STATES),
  phase: z.enum(START_PHASES).optional(),
  error: ErrorInfoSchema.optional(),
  /** The driver running the VM; while none runs, the `driver` setting. */
  driver: z.string(),
  /** Why that driver (auto's choice and what it passed over, or the setting). */
  driverReason: z.string().optional(),
  accel: AcceleratorSchema.optional(),
  accelReason: z.string().optional(),
  /**
   * The rosetta setting is on: whether this VM runs amd64 binaries through
   * Rosetta, and when not, why (another driver, an x86_64 guest, no Rosetta
   * on the Mac).
   */
  rosetta: z.object({ active: z.boolean(), note: z.string().optional() }).optional(),
  cpus: z.number(),
  memoryMiB: z.number(),
  diskGiB: z.number(),
  dockerSocket: z.string(),
  dockerHost: z.string(),
  dockerContext: z.object({ name: z.string(), outcome: z.string() }).optional(),
  enginePid: z.number(),
  vmPid: z.number().optional(),
  sshPort: z.number().optional(),
  /** Where the engine reaches the guest's sshd (loopback for QEMU, the guest's address for vfkit and Hyper-V). */
  sshHost: z.string().optional(),
  startedAt: z.string().optional(),
  attached: z.boolean().optional(),
  /** Idle rest: the setting, how long nothing has been in use, and the wakes so far. */
  rest: z
    .object({
      idleMinutes: z.number(),
      /** Since when nothing has been in use (while running), or why it cannot rest now. */
      idleSince: z.string().optional(),
      busy: z.string().optional(),
      restingSince: z.string().optional(),
      rests: z.number(),
      wakes: z.number(),
      /** The last wake: from the first waiting connection to dockerd answering it. */
      lastWakeMs: z.number().optional(),
    })
    .optional(),
  /** The VM's last unexpected exit under this engine, and how many in the last 10 minutes. */
  lastCrash: z.object({ at: z.string(), reason: z.string(), recent: z.number() }).optional(),
  timings: TimingsSchema.optional(),
  /** How long each start phase took over the last starts (the median), for the start checklist; absent before the first start. */
  expected: z.object({ starts: z.number(), totalMs: z.number(), phases: z.partialRecord(z.enum(START_PHASES), z.number()) }).optional(),
  /** The last start's steps, host and guest, in the order they happened (absent after a reattach). */
  bootTimeline: z.array(BootStepSchema).optional(),
  session: z.object({ state: z.string(), connects: z.number() }).optional(),
  forward: z.object({ active: z.number(), total: z.number(), failed: z.number() }).optional(),
  /** The host's SSH agent in the guest: the socket containers mount, or why there is none. */
  sshAgent: z.object({ guestPath: z.string().optional(), why: z.string().optional() }).optional(),
  /** Where the engine relays host.docker.internal to the host's loopback (vfkit, Hyper-V): the guest's address for it, or why not. Absent where the network reaches it. */
  hostLoopback: z.object({ address: z.string().optional(), why: z.string().optional() }).optional(),
  /**
   * The data disk: its size, what its file takes on the host (allocated
   * blocks), and what the guest's file system holds (df; asked at most every
   * few seconds while the VM runs, with when). Absent before the first start.
   */
  disk: z.object({ sizeBytes: z.number(), allocatedBytes: z.number(), usedBytes: z.number().optional(), usedAt: z.string().optional() }).optional(),
  shares: z.array(ShareViewSchema).optional(),
  sync: z.array(SyncViewSchema).optional(),
  image: z.object({ dir: z.string(), recipeHash: z.string(), kernelRelease: z.string() }).optional(),
  /** The settings file is broken: what is wrong; the engine goes on with the last good settings. */
  settingsProblem: ErrorInfoSchema.optional(),
});
export type VmStatus = z.infer<typeof VmStatusSchema>;

export const ManualPortViewSchema = z.object({
  hostPort: z.number(),
  guestPort: z.number(),
  proto: z.enum(['tcp', 'udp']),
  hostIp: z.string().optional(),
});

/** The range a number setting takes on this host (the engine's own rule). */
export const SettingLimitSchema = z.object({ min: z.number(), max: z.number() });

/** The ranges of the number settings here, and the host they come from (memory and CPUs). */
export const SettingsLimitsSchema = z.object({
  cpus: SettingLimitSchema,
  memoryMiB: SettingLimitSchema,
  diskGiB: SettingLimitSchema,
  idleMinutes: SettingLimitSchema,
  host: z.object({ cpus: z.number(), memoryMiB: z.number() }),
});
export type SettingsLimits = z.infer<typeof SettingsLimitsSchema>;

export const SettingsViewSchema = z.object({
  cpus: z.number(),
  memoryMiB: z.number(),
  diskGiB: z.number(),
  accel: z.enum(ACCELERATORS),
  driver: z.enum(DRIVER_SETTINGS),
  /** Rosetta for amd64 binaries (absent from engines older than the setting). */
  rosetta: z.boolean().optional(),
  portBind: z.enum(['loopback', 'all']),
  /** Minutes with nothing in use before the VM rests; 0 = never (absent from engines older than the idle rest). */
  idleMinutes: z.number().optional(),
  /** Absent from engines older than virtiofs. */
  shareMechanism: z.enum(SHARE_MECHANISM_SETTINGS).optional(),
  ports: z.array(ManualPortViewSchema),
  shares: z.array(ShareSettingSchema),
  /** Set when the file on disk is broken and these are the last good settings. */
  problem: ErrorInfoSchema.optional(),
  /** Synced folders (absent from engines older than sync mode). */
  sync: z.array(SyncSettingSchema).optional(),
  /** The ranges the number settings take here (absent from older engines). */
  limits: SettingsLimitsSchema.optional(),
  /** Registries and proxies for the guest's dockerd (absent from older engines). */
  insecureRegistries: z.array(z.string()).optional(),
  caCertificates: z.array(z.string()).optional(),
  httpProxy: z.string().optional(),
  httpsProxy: z.string().optional(),
  noProxy: z.string().optional(),
});

export const PortViewSchema = z.object({
  proto: z.enum(['tcp', 'udp']),
  hostPort: z.number(),
  hostIps: z.array(z.string()),
  guestIp: z.string(),
  guestPort: z.number(),
  source: z.enum(['docker', 'guest', 'manual']),
  container: z.object({ id: z.string(), name: z.string(), port: z.number() }).optional(),
  state: z.enum(['active', 'conflict', 'error']),
  error: z.string().optional(),
  holder: z.object({ pid: z.number().optional(), command: z.string().optional() }).optional(),
  connections: z.number(),
});
export type PortViewWire = z.infer<typeof PortViewSchema>;

const PortNumber = portNumber();
const SharesResult = z.object({ shares: z.array(ShareViewSchema), configured: z.array(ShareSettingSchema) });
const SyncResult = z.object({ syncs: z.array(SyncViewSchema), configured: z.array(SyncSettingSchema) });
const PortsResult = z.object({ ports: z.array(PortViewSchema), manual: z.array(ManualPortViewSchema) });

const Empty = z.object({}).strict();

export const methods = {
  hello: {
    // `protocol`: the client's PROTOCOL_VERSION; an engine that speaks another refuses (PROTOCOL_MISMATCH).
    params: z.object({ token: z.string().max(256), client: z.string().max(64).optional(), protocol: z.number().int().optional() }).strict(),
    result: z.object({ protocol: z.number(), version: z.string(), instance: z.string(), pid: z.number() }),
  },
  'events.subscribe': { params: Empty, result: Empty },
  'vm.status': { params: Empty, result: VmStatusSchema },
  'vm.start': { params: Empty, result: VmStatusSchema },
  'vm.stop': { params: z.object({ force: z.boolean().optional() }).strict(), result: VmStatusSchema },
  'vm.restart': { params: Empty, result: VmStatusSchema },
  'settings.get': { params: Empty, result: SettingsViewSchema },
  'settings.update': {
    // The patch is checked key by key by the settings schema (INVALID_SETTINGS).
    params: z.object({ patch: z.record(z.string(), z.unknown()) }).strict(),
    result: z.object({
      settings: SettingsViewSchema,
      changed: z.array(z.string()),
      restartRequired: z.boolean(),
      /** Said when a broken settings file had to be moved aside to save. */
      notice: z.string().optional(),
    }),
  },
  'guest.sshEndpoint': {
    params: Empty,
    result: z.object({
      host: z.string(),
      port: z.number(),
      user: z.string(),
      privateKeyPath: z.string(),
      hostPublicKey: z.string(),
    }),
  },
  'guest.logs': {
    params: z.object({ lines: z.number().int().min(1).max(10000).optional() }).strict(),
    result: z.object({ lines: z.array(z.string()) }),
  },
  'ports.list': { params: Empty, result: PortsResult },
  'ports.add': {
    params: z.object({ hostPort: PortNumber, guestPort: PortNumber, proto: z.enum(['tcp', 'udp']).optional(), hostIp: z.string().max(64).optional() }).strict(),
    result: PortsResult,
  },
  'ports.remove': {
    params: z.object({ hostPort: PortNumber, proto: z.enum(['tcp', 'udp']).optional() }).strict(),
    result: PortsResult,
  },
  'shares.list': { params: Empty, result: SharesResult },
  'shares.add': {
    params: z.object({ hostPath: z.string().min(1).max(4096), guestPath: z.string().max(4096).optional(), readOnly: z.boolean().optional() }).strict(),
    result: SharesResult,
  },
  'shares.remove': { params: z.object({ hostPath: z.string().min(1).max(4096) }).strict(), result: SharesResult },
  /** Folders kept in sync with a copy on the VM's disk, with their state and conflicts. */
  'sync.list': { params: Empty, result: SyncResult },
  /** Start syncing a folder inside a share (saved in settings; copied at once when the VM runs). */
  'sync.add': { params: z.object({ hostPath: z.string().min(1).max(4096) }).strict(), result: SyncResult },
  /** Stop syncing: a last sync, then the guest copy is deleted (the host folder is untouched). */
  'sync.remove': { params: z.object({ hostPath: z.string().min(1).max(4096) }).strict(), result: SyncResult },
  'engine.shutdown': { params: z.object({ stopVm: z.boolean() }).strict(), result: Empty },
  /** The last lines of the engine's log or the VM's serial console (files on the host). */
  'logs.read': {
    params: z.object({ source: z.enum(['engine', 'serial']), lines: z.number().int().min(1).max(10000).optional() }).strict(),
    result: z.object({ source: z.enum(['engine', 'serial']), file: z.string(), lines: z.array(z.string()) }),
  },
  /** A zip of logs, settings and status with keys and tokens removed; also saved in the instance folder. */
  'diagnostics.bundle': {
    params: Empty,
    result: z.object({ path: z.string(), fileName: z.string(), bytes: z.number(), base64: z.string(), files: z.array(z.string()) }),
  },
  /** With the VM stopped: delete the data disk (containers, images, volumes) and go back to the default settings. */
  'engine.factoryReset': {
    params: z.object({ confirm: z.literal(true) }).strict(),
    result: z.object({ removed: z.array(z.string()), settings: SettingsViewSchema, kept: z.array(z.string()) }),
  },
  ...dockerMethods,
  ...hostMethods,
} as const;

export { FRONT_END_METHODS };

export type Methods = typeof methods;
export type MethodName = keyof Methods;
export type Params<M extends MethodName> = z.input<Methods[M]['params']>;

/**
 * A method's params checked against the contract, with one message for
 * every path that checks them (the engine, the dashboard's gateway, the
 * offline path): BAD_REQUEST, nothing changed.
 */
export function checkParams<M extends MethodName>(m: M, raw: unknown): z.infer<Methods[M]['params']> {
  const parsed = methods[m].params.safeParse(raw);
  if (!parsed.success) throw new BerthError('BAD_REQUEST', `bad params for ${m}: ${describeIssues(parsed.error)}`, 'Nothing was changed.');
  return parsed.data as z.infer<Methods[M]['params']>;
}
export type Result<M extends MethodName> = z.infer<Methods[M]['result']>;
/** What serves the contract: one function per method (hello and events.subscribe belong to the connection). */
export type Handlers = {
  [M in Exclude<MethodName, 'hello' | 'events.subscribe' | keyof typeof hostMethods>]: (params: z.infer<Methods[M]['params']>) => Promise<Result<M>>;
};

export const events = {
  'vm.state': z.object({
    state: z.enum(VM_STATES),
    previous: z.enum(VM_STATES),
    at: z.string(),
    error: ErrorInfoSchema.optional(),
  }),
  /**
   * A start phase's latest message. `step` marks a running count or timer
   * (the image build's packages, its squashfs seconds): consecutive messages
   * with the same step replace each other, one updating line in a terminal;
   * `fraction` (0..1) is how far that step is, when it counts toward a total.
   */
  'vm.progress': z.object({
    phase: z.enum(START_PHASES),
    message: z.string(),
    at: z.string(),
    step: z.string().optional(),
    fraction: z.number().min(0).max(1).optional(),
  }),
  'guest.session': z.object({ state: z.string(), at: z.string() }),
  'ports.changed': z.object({ ports: z.array(PortViewSchema) }),
  'shares.changed': z.object({ shares: z.array(ShareViewSchema) }),
  'sync.changed': z.object({ syncs: z.array(SyncViewSchema) }),
  /** Both sides changed a synced file: both versions were kept. */
  'sync.conflict': z.object({ hostPath: z.string(), conflict: SyncConflictSchema }),
  ...dockerEvents,
} as const;

export type EventName = keyof typeof events;
export type EventData<E extends EventName> = z.infer<(typeof events)[E]>;
/** Sends an event to the subscribed clients; its data is the event's own type. */
export type Broadcast = <E extends EventName>(event: E, data: EventData<E>) => void;

/** Wire messages: one JSON object per line. */
export const RequestSchema = z.object({
  id: z.union([z.number().int(), z.string().max(64)]),
  method: z.string().max(64),
  params: z.unknown().optional(),
});
export type Request = z.infer<typeof RequestSchema>;

export type Response = { id: Request['id'] | null; result: unknown } | { id: Request['id'] | null; error: z.infer<typeof ErrorInfoSchema> };

export type EventMessage = { event: EventName; data: unknown };
