import { z } from 'zod';

/**
 * The Docker part of the contract: what the desktop UI and the browser
 * dashboard need (containers, images, volumes, logs, a terminal), served by
 * the engine through the VM's dockerd. Merged into `methods` and `events`
 * in contract.ts.
 */
export const dockerMethods = {} satisfies Record<string, { params: z.ZodType; result: z.ZodType }>;

export const dockerEvents = {} satisfies Record<string, z.ZodType>;
