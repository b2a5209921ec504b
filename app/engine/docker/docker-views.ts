import type { ContainerView, ImageView, VolumeView } from '../../contract/contract-docker.js';
import { BerthError } from '../../contract/errors.js';
import { DockerApiError, type ContainerSummary } from './docker-api.js';

/**
 * Docker Engine API objects turned into the contract's views, and Docker's
 * failures turned into BerthErrors with a hint.
 */

export interface ContainerSummaryFull extends ContainerSummary {
  Created: number;
  Labels?: Record<string, string> | null;
  ImageID?: string;
}

export function containerView(c: ContainerSummaryFull): ContainerView {
  const seen = new Set<string>();
  const ports: ContainerView['ports'] = [];
  for (const p of c.Ports ?? []) {
    // Docker lists a port once per address family (0.0.0.0 and ::).
    const key = `${p.PrivatePort}/${p.Type}/${p.PublicPort ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const v: ContainerView['ports'][number] = { privatePort: p.PrivatePort, proto: p.Type };
    if (p.PublicPort) {
      v.publicPort = p.PublicPort;
      if (p.IP) v.hostIp = p.IP;
      // Berth forwards a published port to the same port on the host's loopback.
      if (p.Type === 'tcp') v.url = `http://localhost:${p.PublicPort}`;
    }
    ports.push(v);
  }
  ports.sort((a, b) => (a.publicPort ?? 1e6) - (b.publicPort ?? 1e6) || a.privatePort - b.privatePort);
  const view: ContainerView = {
    id: c.Id,
    name: (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, ''),
    image: c.Image,
    state: c.State,
    status: c.Status,
    created: c.Created,
    ports,
  };
  const project = c.Labels?.['com.docker.compose.project'];
  if (project) view.project = project;
  return view;
}

export interface ImageSummary {
  Id: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Size: number;
  Created: number;
}

export function imageView(i: ImageSummary, usedIds: Set<string>): ImageView {
  const tags = (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
  if (!tags.length) {
    const digest = (i.RepoDigests ?? []).find((d) => !d.startsWith('<none>'));
    if (digest) tags.push(digest.replace(/@.*$/, '@<none>'));
  }
  return { id: i.Id, tags, size: i.Size, created: i.Created, inUse: usedIds.has(i.Id) };
}

export interface VolumeSummary {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt?: string;
  UsageData?: { Size: number; RefCount: number } | null;
}

export function volumeView(v: VolumeSummary): VolumeView {
  const view: VolumeView = { name: v.Name, driver: v.Driver, mountpoint: v.Mountpoint };
  if (v.CreatedAt) view.created = v.CreatedAt;
  if (v.UsageData && v.UsageData.Size >= 0) view.size = v.UsageData.Size;
  if (v.UsageData && v.UsageData.RefCount >= 0) view.refCount = v.UsageData.RefCount;
  return view;
}

/** Any failure of a Docker API call as a BerthError (`what`: "stop container web"). */
export function dockerError(err: unknown, what: string): BerthError {
  if (err instanceof BerthError) return err;
  if (err instanceof DockerApiError) {
    const msg = err.message.trim();
    if (err.status === 404) {
      return new BerthError('DOCKER_NOT_FOUND', `cannot ${what}: ${msg}`, 'It may have been removed meanwhile; the list is refreshed.');
    }
    if (err.status === 409) {
      return new BerthError('DOCKER_CONFLICT', `cannot ${what}: ${msg}`, conflictHint(msg));
    }
    return new BerthError(
      'DOCKER_FAILED',
      `cannot ${what}: Docker said "${msg}" (HTTP ${err.status})`,
      'Check the details in the message; `docker` shows the same error.',
    );
  }
  const e = err as NodeJS.ErrnoException;
  return new BerthError(
    'DOCKER_UNREACHABLE',
    `cannot ${what}: Docker in the VM did not answer (${e?.code ?? e?.message ?? String(err)})`,
    'The VM may be starting or stopping; try again in a moment. `berth status` shows its state.',
  );
}

function conflictHint(msg: string): string {
  if (/running container|stop the container/i.test(msg)) return 'Stop the container first, or remove it with force.';
  if (/image is being used|is using its referenced image|image has dependent child images/i.test(msg)) {
    return 'A container uses this image: remove that container first, or remove the image with force.';
  }
  if (/volume is in use/i.test(msg)) return 'A container uses this volume: remove that container first.';
  if (/already in progress/i.test(msg)) return 'Another operation on it is under way; try again in a moment.';
  return 'Something else uses it or changes it right now; try again, or check with `docker`.';
}
