/**
 * Windows host paths <-> guest paths. The convention follows Docker Desktop
 * (drives under /run/desktop/mnt/host/<drive> in its VM, /mnt/host/<drive>
 * in its WSL integration: lower-case drive letter, forward slashes); Windows
 * path forms follow Microsoft's "File path formats on Windows systems"
 * (learn.microsoft.com/dotnet/standard/io/file-path-formats): drive-absolute
 * C:\x, drive-relative C:x, root-relative \x, UNC \\server\share\x, and the
 * device forms \\?\ and \\.\.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBerthError } from '../../app/contract/errors.js';
import {
  GUEST_HOST_ROOT,
  guestToWindowsPath,
  isGuestHostPath,
  isWindowsAbsolutePath,
  parseWindowsPath,
  translateBindSpec,
  windowsToGuestPath,
} from '../../app/engine/share/windows-paths.js';

test('drive letters, upper or lower case, go to /mnt/host/<lower case letter>', () => {
  assert.equal(GUEST_HOST_ROOT, '/mnt/host');
  assert.equal(windowsToGuestPath('C:\\Users\\me\\src'), '/mnt/host/c/Users/me/src');
  assert.equal(windowsToGuestPath('c:\\Users\\me\\src'), '/mnt/host/c/Users/me/src');
  assert.equal(windowsToGuestPath('D:\\work'), '/mnt/host/d/work');
  assert.equal(windowsToGuestPath('C:\\'), '/mnt/host/c');
});

test('the rest of the path keeps its case', () => {
  assert.equal(windowsToGuestPath('C:\\Users\\Me\\MyProject'), '/mnt/host/c/Users/Me/MyProject');
});

test('spaces and other legal characters pass through', () => {
  assert.equal(windowsToGuestPath('C:\\Users\\Jane Doe\\My Documents\\src'), '/mnt/host/c/Users/Jane Doe/My Documents/src');
  assert.equal(windowsToGuestPath("C:\\Users\\O'Neil\\a b (1)\\Zoë & co"), "/mnt/host/c/Users/O'Neil/a b (1)/Zoë & co");
});

test('forward slashes, mixed and repeated separators', () => {
  assert.equal(windowsToGuestPath('C:/Users/me/src'), '/mnt/host/c/Users/me/src');
  assert.equal(windowsToGuestPath('C:\\Users/me\\\\src//x'), '/mnt/host/c/Users/me/src/x');
});

test('trailing separators are dropped', () => {
  assert.equal(windowsToGuestPath('C:\\Users\\me\\src\\'), '/mnt/host/c/Users/me/src');
  assert.equal(windowsToGuestPath('C:/Users/me/src/'), '/mnt/host/c/Users/me/src');
  assert.equal(windowsToGuestPath('\\\\server\\share\\dir\\'), '/mnt/host/unc/server/share/dir');
});

test('. and .. are resolved, but not above the root', () => {
  assert.equal(windowsToGuestPath('C:\\Users\\me\\.\\src\\..\\lib'), '/mnt/host/c/Users/me/lib');
  assert.throws(
    () => windowsToGuestPath('C:\\..\\Windows'),
    (e) => isBerthError(e, 'INVALID_HOST_PATH'),
  );
});

test('UNC paths go under /mnt/host/unc/<server>/<share>', () => {
  assert.equal(windowsToGuestPath('\\\\server\\share\\x'), '/mnt/host/unc/server/share/x');
  assert.equal(windowsToGuestPath('\\\\fileserver.corp\\Team Share\\Project A'), '/mnt/host/unc/fileserver.corp/Team Share/Project A');
  assert.equal(windowsToGuestPath('//server/share/x'), '/mnt/host/unc/server/share/x');
  assert.equal(windowsToGuestPath('\\\\server\\share'), '/mnt/host/unc/server/share');
  assert.throws(
    () => windowsToGuestPath('\\\\server'),
    (e) => isBerthError(e, 'INVALID_HOST_PATH') && /UNC/.test(e.message),
  );
  assert.throws(
    () => windowsToGuestPath('\\\\server\\'),
    (e) => isBerthError(e, 'INVALID_HOST_PATH'),
  );
});

test('long (\\\\?\\) forms are the same paths; device paths are refused', () => {
  assert.equal(windowsToGuestPath('\\\\?\\C:\\Users\\me'), '/mnt/host/c/Users/me');
  assert.equal(windowsToGuestPath('\\\\?\\UNC\\server\\share\\x'), '/mnt/host/unc/server/share/x');
  for (const p of ['\\\\.\\pipe\\docker_engine', '\\\\.\\C:\\x', '\\\\?\\Volume{b75e2c83-0000-0000-0000-602f00000000}\\x']) {
    assert.throws(
      () => windowsToGuestPath(p),
      (e) => isBerthError(e, 'INVALID_HOST_PATH') && /device path/.test(e.message),
      p,
    );
  }
});

test('relative paths are refused with a clear error', () => {
  const cases: [string, RegExp][] = [
    ['src', /relative path/],
    ['.\\src', /relative path/],
    ['..\\src', /relative path/],
    ['C:src', /relative to the current folder of drive C:/],
    ['C:', /relative to the current folder of drive C:/],
    ['\\Users\\me', /no drive letter/],
    ['/Users/me', /no drive letter/],
    ['', /empty/],
  ];
  for (const [p, why] of cases) {
    assert.throws(
      () => windowsToGuestPath(p),
      (e) => isBerthError(e, 'INVALID_HOST_PATH') && why.test(e.message) && /C:\\Users\\me\\src/.test(e.hint),
      p,
    );
    assert.equal(isWindowsAbsolutePath(p), false, p);
  }
});

test('characters Windows forbids in names are refused', () => {
  assert.throws(
    () => parseWindowsPath('C:\\a|b'),
    (e) => isBerthError(e, 'INVALID_HOST_PATH'),
  );
  assert.throws(
    () => parseWindowsPath('C:\\a\\b:c'),
    (e) => isBerthError(e, 'INVALID_HOST_PATH'),
  );
});

test('guest to Windows: the way back', () => {
  assert.equal(guestToWindowsPath('/mnt/host/c/Users/me/src'), 'C:\\Users\\me\\src');
  assert.equal(guestToWindowsPath('/mnt/host/d'), 'D:\\');
  assert.equal(guestToWindowsPath('/mnt/host/c/'), 'C:\\');
  assert.equal(guestToWindowsPath('/mnt/host/c/Users/Jane Doe/src/'), 'C:\\Users\\Jane Doe\\src');
  assert.equal(guestToWindowsPath('/mnt/host/c/Users/me/./src/../lib'), 'C:\\Users\\me\\lib');
  assert.equal(guestToWindowsPath('/mnt/host/unc/server/share/x'), '\\\\server\\share\\x');
  assert.equal(guestToWindowsPath('/mnt/host/unc/server/share'), '\\\\server\\share');
});

test('guest paths that are not host paths are refused', () => {
  for (const p of [
    '/var/lib/docker',
    '/mnt/host',
    '/mnt/hostile/c',
    '/mnt/host/cd/x',
    '/mnt/host/unc/server',
    '/mnt/host/c/../../etc',
    'mnt/host/c/x',
    '/mnt/host/c/a\\b',
    '/mnt/host/c/a:b',
  ]) {
    assert.throws(
      () => guestToWindowsPath(p),
      (e) => isBerthError(e, 'INVALID_HOST_PATH') && e.hint.length > 0,
      p,
    );
    assert.equal(isGuestHostPath(p), false, p);
  }
  assert.equal(isGuestHostPath('/mnt/host/c/x'), true);
});

test('round trips', () => {
  for (const p of ['C:\\Users\\me\\src', 'D:\\', 'E:\\a b\\c', '\\\\server\\share\\x y\\z', '\\\\server\\share']) {
    assert.equal(guestToWindowsPath(windowsToGuestPath(p)), p, p);
  }
  for (const g of ['/mnt/host/c/Users/me', '/mnt/host/z', '/mnt/host/unc/s/sh/a']) {
    assert.equal(windowsToGuestPath(guestToWindowsPath(g)), g, g);
  }
});

test('docker binds from a Windows client', () => {
  assert.equal(translateBindSpec('C:\\Users\\me\\src:/src'), '/mnt/host/c/Users/me/src:/src');
  assert.equal(translateBindSpec('c:/Users/me/src:/src:ro'), '/mnt/host/c/Users/me/src:/src:ro');
  assert.equal(translateBindSpec('C:\\Users\\Jane Doe\\src:/src:rw,z'), '/mnt/host/c/Users/Jane Doe/src:/src:rw,z');
  assert.equal(translateBindSpec('\\\\server\\share\\x:/data'), '/mnt/host/unc/server/share/x:/data');
  assert.equal(translateBindSpec('myvolume:/data'), 'myvolume:/data', 'named volumes pass');
  assert.equal(translateBindSpec('/var/run/docker.sock:/var/run/docker.sock'), '/var/run/docker.sock:/var/run/docker.sock');
});
