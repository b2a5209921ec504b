import fs from 'node:fs';
import type { DriverFeatures, GuestTraits } from '../drivers/driver.js';
import { writeFixedVhd } from '../drivers/vhd.js';
import { ROSETTA_TAG } from '../drivers/vm-spec.js';
import { writeConfigDisk } from '../guest/config-disk.js';
import type { GuestDockerConfig } from '../docker/daemon-config.js';
import type { GuestKeys } from '../../base/ssh-keys.js';
import type { InstancePaths } from '../../base/paths.js';

/**
 * An instance's own disks before a boot: the data disk at the size settings
 * ask for (the guest grows its file system to it), and the config disk with
 * the keys and what the guest must know (network, hostname, Rosetta).
 */
export function prepareInstanceDisks(o: {
  paths: InstancePaths;
  diskGiB: number;
  traits: GuestTraits;
  features: DriverFeatures;
  keys: GuestKeys;
  rosetta: boolean;
  /** dockerd's registry and proxy configuration (docker/daemon-config.ts). */
  docker?: GuestDockerConfig;
}): void {
  // A VHDX driver makes its data disk itself (Hyper-V: a dynamic VHDX, hyperv.ts).
  if (o.features.diskFormat === 'raw') growRawDataDisk(o.paths.dataDisk, o.diskGiB);
  writeConfigDisk(o.paths.configDir, o.paths.configDisk, {
    authorizedKeys: o.keys.clientPublic,
    hostPrivateKey: o.keys.hostPrivate,
    hostPublicKey: o.keys.hostPublic,
    env: {
      BERTH_NET: o.traits.network,
      BERTH_HOSTNAME: 'berth',
      BERTH_INSTANCE: o.paths.name,
      // host.docker.internal and gateway.docker.internal, in the guest and its containers.
      BERTH_HOST_LOOPBACK: o.traits.hostLoopback.address,
      // The guest mounts this virtiofs tag and registers Rosetta (rosetta.sh).
      ...(o.rosetta ? { BERTH_ROSETTA: ROSETTA_TAG } : {}),
    },
    ...(o.docker ? { docker: o.docker } : {}),
  });
  if (o.features.diskFormat === 'vhdx') writeFixedVhd(o.paths.configDisk, o.paths.configVhd);
}

/** Sparse: the file takes only what the guest writes. Never shrunk here (settings refuse that). */
function growRawDataDisk(file: string, diskGiB: number): void {
  const want = diskGiB * 1024 ** 3;
  let size = -1;
  try {
    size = fs.statSync(file).size;
  } catch {
    /* first start */
  }
  if (size < want) {
    const fd = fs.openSync(file, size < 0 ? 'w' : 'r+', 0o600);
    fs.ftruncateSync(fd, want);
    fs.closeSync(fd);
  }
}

/** Keep the previous boot's serial log as serial.log.1. */
export function rotateLog(file: string): void {
  try {
    fs.renameSync(file, `${file}.1`);
  } catch {
    /* first boot */
  }
}
