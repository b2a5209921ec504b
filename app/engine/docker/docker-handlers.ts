import type { dockerMethods } from '../api/contract-docker.js';
import type { Handlers } from '../api/control-server.js';
import type { EventName } from '../api/contract.js';
import { DockerApi } from './docker-api.js';

/** What the Docker handlers get from the engine. */
export interface DockerHandlerContext {
  /** The Docker API through the host socket; throws VM_NOT_RUNNING when there is none. */
  api(): DockerApi;
  /** Send an event to every subscribed client. */
  broadcast(event: EventName, data: unknown): void;
}

export type DockerHandlers = Pick<Handlers, keyof typeof dockerMethods>;

export function dockerHandlers(_ctx: DockerHandlerContext): DockerHandlers {
  return {};
}

export { DockerApi };
