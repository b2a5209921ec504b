/**
 * Run by the settings fuzz test in a child process (as an unprivileged user
 * when the tests run as root, so that a mode-000 file really is unreadable):
 * open a settings store and print what it sees as one JSON line.
 */
import { SettingsStore } from '../../app/engine/settings/store.js';

const file = process.argv[2]!;
const store = new SettingsStore(file);
let settings: unknown;
let error: unknown;
try {
  settings = store.get();
} catch (err) {
  error = (err as { toInfo?: () => unknown }).toInfo?.() ?? String(err);
}
process.stdout.write(JSON.stringify({ settings, error, problem: store.problem?.toInfo() }) + '\n');
