import { z } from 'zod';
import { ERROR_CODES } from './errors.js';

/**
 * The Docker part of the contract: what the desktop UI and the browser
 * dashboard need (containers, images, volumes, logs, a terminal), served by
 * the engine through the VM's dockerd. Merged into `methods` and `events`
 * in contract.ts.
 *
 * Streams (container logs, terminals) are started by a method that returns
 * their id; their data then arrives as events carrying that id, and a last
 * event says they ended. Events go to every subscribed client: a client
 * keeps the ids it started and ignores the others.
 */

const ErrorInfo = z.object({ code: z.enum(ERROR_CODES), message: z.string(), hint: z.string(), details: z.string().optional() });

/** A container's id (or a prefix of it) or its name. */
const ContainerRef = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'must be a container id or name (letters, digits, _ . -)');
/** An image id (sha256:...), a prefix of it, or a reference such as repo/name:tag. */
const ImageRef = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$/, 'must be an image id or reference')
  .refine((s) => !s.includes('..'), 'must be an image id or reference');
const VolumeName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/, 'must be a volume name');
/** Ids of log streams and terminal sessions, made by the engine. */
const StreamId = z.string().regex(/^[a-z]+-[a-z0-9]{1,40}$/, 'must be an id returned by the engine');
const Empty = z.object({}).strict();

export const ContainerPortViewSchema = z.object({
  privatePort: z.number(),
  publicPort: z.number().optional(),
  hostIp: z.string().optional(),
  proto: z.enum(['tcp', 'udp', 'sctp']),
  /** http://localhost:PORT for a published TCP port (Berth forwards it to the host). */
  url: z.string().optional(),
});

export const ContainerViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  image: z.string(),
  /** Docker's state: created, running, paused, restarting, removing, exited, dead. */
  state: z.string(),
  /** Docker's human status, e.g. "Up 3 minutes". */
  status: z.string(),
  /** Unix seconds. */
  created: z.number(),
  ports: z.array(ContainerPortViewSchema),
  /** The Compose project, when the container belongs to one. */
  project: z.string().optional(),
});
export type ContainerView = z.infer<typeof ContainerViewSchema>;

export const ImageViewSchema = z.object({
  id: z.string(),
  tags: z.array(z.string()),
  size: z.number(),
  created: z.number(),
  /** Some container (running or not) uses it. */
  inUse: z.boolean(),
});
export type ImageView = z.infer<typeof ImageViewSchema>;

export const VolumeViewSchema = z.object({
  name: z.string(),
  driver: z.string(),
  mountpoint: z.string(),
  created: z.string().optional(),
  /** Bytes, when dockerd measured it (-1 is unknown and left out). */
  size: z.number().optional(),
  /** How many containers use it. */
  refCount: z.number().optional(),
});
export type VolumeView = z.infer<typeof VolumeViewSchema>;

/** What `docker inspect` says about a container, for the UI's Inspect view. */
export const ContainerDetailsSchema = z.object({
  id: z.string(),
  name: z.string(),
  image: z.string(),
  state: z.string(),
  /** RFC 3339. */
  created: z.string(),
  /** The entrypoint and its arguments as Docker runs them. */
  command: z.array(z.string()),
  workingDir: z.string().optional(),
  tty: z.boolean(),
  restartPolicy: z.string().optional(),
  env: z.array(z.object({ name: z.string(), value: z.string() })),
  labels: z.array(z.object({ name: z.string(), value: z.string() })),
  mounts: z.array(
    z.object({
      /** bind, volume, tmpfs, ... */
      type: z.string(),
      /** The host (VM) path, or the volume's name. */
      source: z.string(),
      destination: z.string(),
      readOnly: z.boolean(),
    }),
  ),
  ports: z.array(ContainerPortViewSchema),
  networks: z.array(z.object({ name: z.string(), ipAddress: z.string().optional() })),
  project: z.string().optional(),
});
export type ContainerDetails = z.infer<typeof ContainerDetailsSchema>;

/** One live sample of a container's resource use (Docker's stats, about once a second). */
export const ContainerStatsSampleSchema = z.object({
  stream: z.string(),
  /** Share of one CPU, as `docker stats` shows it (200 = two CPUs busy). */
  cpuPercent: z.number(),
  /** Memory in use, without the page cache that can be dropped (as `docker stats`). */
  memoryBytes: z.number(),
  /** The container's memory limit (the VM's memory when it has none). */
  memoryLimitBytes: z.number(),
  pids: z.number().optional(),
  at: z.string(),
});
export type ContainerStatsSample = z.infer<typeof ContainerStatsSampleSchema>;

const PruneResult = z.object({ deleted: z.number(), reclaimedBytes: z.number() });

export const dockerMethods = {
  'docker.info': {
    params: Empty,
    result: z.object({
      serverVersion: z.string(),
      containers: z.number(),
      running: z.number(),
      paused: z.number(),
      stopped: z.number(),
      images: z.number(),
      ncpu: z.number(),
      memTotal: z.number(),
      kernel: z.string(),
      os: z.string(),
    }),
  },
  'containers.list': {
    params: z.object({ all: z.boolean().optional() }).strict(),
    result: z.object({ containers: z.array(ContainerViewSchema) }),
  },
  'containers.start': { params: z.object({ id: ContainerRef }).strict(), result: z.object({ container: ContainerViewSchema.nullable() }) },
  'containers.stop': {
    params: z.object({ id: ContainerRef, timeoutSeconds: z.number().int().min(0).max(600).optional() }).strict(),
    result: z.object({ container: ContainerViewSchema.nullable() }),
  },
  'containers.restart': {
    params: z.object({ id: ContainerRef, timeoutSeconds: z.number().int().min(0).max(600).optional() }).strict(),
    result: z.object({ container: ContainerViewSchema.nullable() }),
  },
  'containers.remove': {
    params: z.object({ id: ContainerRef, force: z.boolean().optional(), volumes: z.boolean().optional() }).strict(),
    result: Empty,
  },
  /** Start streaming a container's log: `containers.logs.data` events, then `containers.logs.end`. */
  'containers.logs': {
    params: z
      .object({
        id: ContainerRef,
        /** Keep streaming new lines (default true). */
        follow: z.boolean().optional(),
        /** How many lines from the end to start with (default 500; 0: none). */
        tail: z.number().int().min(0).max(100_000).optional(),
        /** Prefix each line with its RFC 3339 time. */
        timestamps: z.boolean().optional(),
      })
      .strict(),
    result: z.object({ stream: z.string(), tty: z.boolean() }),
  },
  'containers.logs.stop': { params: z.object({ stream: StreamId }).strict(), result: Empty },
  /** Env, mounts, ports, labels and the rest of `docker inspect` a user reads. */
  'containers.inspect': { params: z.object({ id: ContainerRef }).strict(), result: ContainerDetailsSchema },
  /**
   * Start a live CPU and memory stream for one container: `containers.stats.data`
   * about once a second, then `containers.stats.end`. One Docker stats request
   * per stream; stop it when the view closes.
   */
  'containers.stats': { params: z.object({ id: ContainerRef }).strict(), result: z.object({ stream: z.string() }) },
  'containers.stats.stop': { params: z.object({ stream: StreamId }).strict(), result: Empty },
  /** A shell (or `command`) in a running container with a pty: `terminal.output` events, then `terminal.exit`. */
  'terminal.start': {
    params: z
      .object({
        id: ContainerRef,
        cols: z.number().int().min(1).max(1000),
        rows: z.number().int().min(1).max(1000),
        command: z.array(z.string().max(4096)).min(1).max(64).optional(),
      })
      .strict(),
    result: z.object({ session: z.string() }),
  },
  'terminal.input': { params: z.object({ session: StreamId, data: z.string().max(65_536) }).strict(), result: Empty },
  'terminal.resize': {
    params: z.object({ session: StreamId, cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict(),
    result: Empty,
  },
  'terminal.stop': { params: z.object({ session: StreamId }).strict(), result: Empty },
  'images.list': { params: Empty, result: z.object({ images: z.array(ImageViewSchema) }) },
  'images.remove': {
    params: z.object({ id: ImageRef, force: z.boolean().optional() }).strict(),
    result: z.object({ deleted: z.array(z.string()), untagged: z.array(z.string()) }),
  },
  /** Remove dangling images, or every image no container uses with `all`. */
  'images.prune': { params: z.object({ all: z.boolean().optional() }).strict(), result: PruneResult },
  'volumes.list': { params: Empty, result: z.object({ volumes: z.array(VolumeViewSchema) }) },
  'volumes.remove': { params: z.object({ name: VolumeName, force: z.boolean().optional() }).strict(), result: Empty },
  /** Remove every volume no container uses. */
  'volumes.prune': { params: Empty, result: PruneResult },
} satisfies Record<string, { params: z.ZodType; result: z.ZodType }>;

export const dockerEvents = {
  /** A container was created, started, stopped, renamed or removed (`container` is null once it is gone). */
  'containers.changed': z.object({ id: z.string(), action: z.string(), container: ContainerViewSchema.nullable() }),
  'images.changed': z.object({ id: z.string(), action: z.string() }),
  'volumes.changed': z.object({ name: z.string(), action: z.string() }),
  'containers.logs.data': z.object({ stream: z.string(), source: z.enum(['stdout', 'stderr']), text: z.string() }),
  'containers.logs.end': z.object({ stream: z.string(), error: ErrorInfo.optional() }),
  'containers.stats.data': ContainerStatsSampleSchema,
  'containers.stats.end': z.object({ stream: z.string(), error: ErrorInfo.optional() }),
  'terminal.output': z.object({ session: z.string(), data: z.string() }),
  'terminal.exit': z.object({ session: z.string(), exitCode: z.number().optional(), error: ErrorInfo.optional() }),
} satisfies Record<string, z.ZodType>;
