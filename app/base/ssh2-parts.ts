import { createRequire } from 'node:module';
import type { Client as Ssh2Client, utils as Ssh2Utils } from 'ssh2';

/**
 * The parts of ssh2 (pinned in package.json) that Berth uses, each loaded
 * from its own file. ssh2's index also loads its SSH server and its HTTP
 * agents, and with them Node's https and tls: the engine holds all of that
 * for as long as it runs and never uses it (issue 16: 0.7 MiB in a bare
 * node). ssh2 has no exports map; these paths are its
 * own lib files, and test/unit/ssh2-parts.test.ts checks they still hold
 * what the index gives.
 */
const require = createRequire(import.meta.url);

export const Client: typeof Ssh2Client = require('ssh2/lib/client.js');
export type Client = Ssh2Client;

export const parseKey: typeof Ssh2Utils.parseKey = (require('ssh2/lib/protocol/keyParser.js') as typeof Ssh2Utils).parseKey;

export const generateKeyPairSync: typeof Ssh2Utils.generateKeyPairSync = (require('ssh2/lib/keygen.js') as typeof Ssh2Utils).generateKeyPairSync;
