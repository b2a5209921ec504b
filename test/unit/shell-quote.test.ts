/**
 * The one quoting rule for commands sent to the guest: whatever the string
 * (quotes, $, backticks, newlines, globs, a leading dash), the shells the
 * guest and the host run read it back as exactly that string.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from '../helpers/prereq-gate.js';
import { sh, shq, shWord } from '../../app/base/shell-quote.js';
import { guestShells } from '../helpers/guest-shells.js';

const HOSTILE = ["it's", '$(touch /tmp/pwned)', '`id`', 'a b\tc\nd', "'", "''", '\\', '*', '-rf', '', 'ü € 💥', '"; rm -rf / #', '$HOME', '!!'];

for (const shell of guestShells()) {
  test(`${shell.name} reads every quoted string back as it was`, { needs: shell.problem }, () => {
    for (const s of HOSTILE) {
      for (const quoted of [shq(s), shWord(s)]) {
        const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', `printf '%s' ${quoted}`], { encoding: 'utf8' });
        assert.equal(r.stdout, s, `${JSON.stringify(s)} as ${quoted}`);
      }
    }
  });

  test(`${shell.name}: sh\`\` quotes every interpolation, one word per array element`, { needs: shell.problem }, () => {
    const cmd = sh`printf '<%s>' ${HOSTILE} ${42}`;
    const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', cmd], { encoding: 'utf8' });
    assert.equal(r.stdout, [...HOSTILE, '42'].map((s) => `<${s}>`).join(''));
  });
}

test('shWord leaves plain words bare, for commands a person reads', () => {
  assert.equal(shWord('/home/me/src'), '/home/me/src');
  assert.equal(shWord('--instance=dev'), '--instance=dev');
  assert.equal(shWord('my dir'), "'my dir'");
});
