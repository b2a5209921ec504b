/**
 * One start's plan made real: the guest image checked (built if need be),
 * the accelerator chosen, the instance disks prepared, the run recorded and
 * the VM launched, with reverse sshfs for the shares when virtiofsd will
 * not start. What the engine keeps of it comes back; the state machine and
 * the progress it reports stay the engine's.
 */
import { BerthError } from '../../contract/errors.js';
import type { GuestKeys } from '../../base/ssh-keys.js';
import { freeLoopbackPort } from '../../base/process-util.js';
import type { Driver, RunningVm, VmSpec } from '../drivers/driver.js';
import type { DriverCheck } from '../drivers/host-detect.js';
import { bootModeFor } from '../drivers/features.js';
import type { GuestImage, ImageStore, ProgressDetail } from '../image/image-store.js';
import type { Settings } from '../settings/schema.js';
import type { AccelChoice } from '../drivers/accel-probe.js';
import { chooseAccel, guestTraits, newRun, rosettaFor, sharePlanFor, vmSpecFor, type EngineTuning, type PlanContext, type RunState } from './boot-plan.js';
import { prepareInstanceDisks } from './instance-disks.js';
import { clientProxies, guestDockerConfig } from '../docker/daemon-config.js';
import { dockerHostUrl } from '../../base/docker-context.js';
import { syncDockerProxiesOrWarn } from '../../base/docker-proxies.js';

export interface PreparedRun {
  image: GuestImage;
  accel: AccelChoice;
  run: RunState;
  spec: VmSpec;
}

/** The image, the accelerator, the disks and the run's record, ready to boot. */
export async function prepareRun(o: {
  plan: PlanContext;
  images: ImageStore;
  tuning: EngineTuning;
  driver: Driver;
  driverReason?: string;
  driverChecks?: DriverCheck[];
  settings: Settings;
  keys: GuestKeys;
  imageProgress: (message: string, detail?: ProgressDetail) => void;
}): Promise<PreparedRun> {
  const { plan, driver, settings } = o;
  const image = await o.images.ensure({ build: true, boot: bootModeFor(driver.features, o.tuning.boot), progress: o.imageProgress });
  const accel = await chooseAccel(plan, driver, settings, image);
  plan.log.info({ accel: accel.accel, reason: accel.reason, cached: accel.cached }, 'accelerator');
  const rosetta = rosettaFor(plan, settings, driver, o.driverChecks);
  const traits = guestTraits(plan, driver);
  prepareInstanceDisks({
    paths: plan.paths,
    diskGiB: settings.diskGiB,
    traits,
    features: driver.features,
    keys: o.keys,
    rosetta: rosetta.use,
    docker: guestDockerConfig(settings, traits.hostLoopback.address),
  });
  // Containers and builds get the proxies through the docker CLI's config, for this socket only.
  syncDockerProxiesOrWarn(dockerHostUrl(plan.paths.dockerSocket), clientProxies(settings, traits.hostLoopback.address), plan.log);
  const run = newRun({
    driver,
    driverReason: o.driverReason,
    sshPort: await freeLoopbackPort(),
    accel,
    image,
    settings,
    rosetta,
    sharePlan: await sharePlanFor(plan, driver, settings),
    hostRelay: traits.hostLoopback.via === 'relay' ? traits.hostLoopback.address : undefined,
  });
  return { image, accel, run, spec: vmSpecFor(plan, run, image, driver) };
}

/**
 * Launch the VM. When virtiofsd will not start, the shares go by reverse
 * sshfs for this start instead (the run's share plan and the spec change).
 */
export async function launchVm(plan: PlanContext, p: PreparedRun, driver: Driver, settings: Settings): Promise<{ vm: RunningVm; spec: VmSpec }> {
  try {
    return { vm: await driver.start(p.spec), spec: p.spec };
  } catch (err) {
    if (!(err instanceof BerthError && err.code === 'VIRTIOFSD_FAILED') || !p.spec.shares?.length) throw err;
    plan.log.warn({ err: err.toInfo() }, 'virtiofsd failed; sharing folders by reverse sshfs for this start');
    p.run.sharePlan = await sharePlanFor(plan, driver, settings, `virtiofsd failed to start (${err.message})`);
    const spec = vmSpecFor(plan, p.run, p.image, driver);
    return { vm: await driver.start(spec), spec };
  }
}
