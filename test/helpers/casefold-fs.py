#!/usr/bin/python3
"""A case-insensitive, case-preserving folder, as macOS (APFS, HFS+) and
Windows (NTFS) give by default: a FUSE pass-through of BACKING at MOUNT in
which a name finds an existing entry whatever its case and Unicode form
(NFC/NFD), and a new entry keeps the name it was made with.

For the sync tests (test/helpers/casefold.ts mounts it). Debian has no
ciopfs since bookworm; python3-fusepy is packaged. Symlinks are stored as
links: the kernel follows them, as macOS does.

usage: casefold-fs.py BACKING MOUNT   (runs in the foreground until unmounted)
"""
import errno
import os
import sys
import unicodedata

from fusepy import FUSE, FuseOSError, Operations


def fold(name):
    return unicodedata.normalize('NFC', name).casefold()


class CaseFold(Operations):
    def __init__(self, backing):
        self.backing = os.path.realpath(backing)

    def real(self, path):
        """The backing path for `path`, each component matched without regard to case or form."""
        cur = self.backing
        for comp in [c for c in path.split('/') if c]:
            exact = os.path.join(cur, comp)
            if os.path.lexists(exact):
                cur = exact
                continue
            match = None
            try:
                for n in os.listdir(cur):
                    if fold(n) == fold(comp):
                        match = n
                        break
            except OSError:
                pass
            cur = os.path.join(cur, match if match is not None else comp)
        return cur

    # metadata
    def getattr(self, path, fh=None):
        st = os.lstat(self.real(path))
        keys = ('st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_size', 'st_ino')
        out = {k: getattr(st, k) for k in keys}
        out.update(st_atime=st.st_atime, st_mtime=st.st_mtime, st_ctime=st.st_ctime)
        return out

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(self.real(path))

    def readlink(self, path):
        return os.readlink(self.real(path))

    def statfs(self, path):
        st = os.statvfs(self.real(path))
        keys = ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')
        return {k: getattr(st, k) for k in keys}

    def access(self, path, mode):
        if not os.access(self.real(path), mode, follow_symlinks=False):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self.real(path), mode)

    def chown(self, path, uid, gid):
        os.lchown(self.real(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self.real(path), times, follow_symlinks=False)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self.real(path), length)

    # names
    def mkdir(self, path, mode):
        os.mkdir(self.real(path), mode)

    def rmdir(self, path):
        os.rmdir(self.real(path))

    def unlink(self, path):
        os.unlink(self.real(path))

    def symlink(self, target, source):
        # fusepy: symlink(name_of_new_link, target)
        os.symlink(source, self.real(target))

    def link(self, target, source):
        os.link(self.real(source), self.real(target))

    def rename(self, old, new):
        src = self.real(old)
        dst = self.real(new)
        # As on macOS: a rename onto an entry that differs only in case replaces it.
        os.rename(src, dst)

    def mknod(self, path, mode, dev):
        os.mknod(self.real(path), mode, dev)

    # contents
    def open(self, path, flags):
        return os.open(self.real(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self.real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fsync(fh)

    def release(self, path, fh):
        os.close(fh)


if __name__ == '__main__':
    backing, mount = sys.argv[1], sys.argv[2]
    FUSE(CaseFold(backing), mount, foreground=True, nothreads=True, fsname='berth-casefold', default_permissions=True)
