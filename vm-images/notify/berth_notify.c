// SPDX-License-Identifier: GPL-2.0
/*
 * berth_notify: file events for changes made on the other side of a shared
 * folder. Neither virtiofs nor FUSE tells the guest's fsnotify when the host
 * creates, writes, deletes or renames a file, so inotify watchers in
 * containers (webpack, vite, nodemon) would see nothing. Berth's engine
 * watches the host side and the guest's nudge program (nudge.pl) writes one
 * command per write() to /proc/berth-notify (root only):
 *
 *   "c PATH"          created: IN_CREATE on its folder (+ IN_MODIFY when it
 *                     has bytes, + IN_CLOSE_WRITE for a regular file)
 *   "m PATH"          written: IN_MODIFY and IN_CLOSE_WRITE
 *   "a PATH"          attributes changed: IN_ATTRIB
 *   "d PATH"          deleted: IN_DELETE on its folder
 *   "r OLD\0NEW"      renamed: IN_MOVED_FROM and IN_MOVED_TO with one
 *                     cookie, IN_MOVE_SELF
 *
 * Every lookup is done with LOOKUP_REVAL, past the guest's dentry and
 * attribute caches, so a watcher that stats the name right after its event
 * finds what the host has (and not a cached "no such file"). A command for
 * a path that must exist (created, written, a rename's new name) and does
 * not fails with that errno and sends nothing. The events are what the
 * guest's own syscalls would have sent; nothing is changed on the share.
 * On a file system nobody watches a command does nothing at all.
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/namei.h>
#include <linux/fsnotify.h>
#include <linux/dcache.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/stat.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Berth: file events for changes made on the host side of a shared folder");

static int reval(const char *name, struct path *p)
{
	return kern_path(name, LOOKUP_REVAL, p);
}

/* The folder of `name` (looked up afresh) and the last component's qstr. */
static int parent_of(char *name, struct path *dir, struct qstr *last)
{
	char *slash = strrchr(name, '/');
	int err;

	if (!slash || slash == name || !slash[1])
		return -EINVAL;
	*slash = '\0';
	err = reval(name, dir);
	*slash = '/';
	if (err)
		return err;
	*last = (struct qstr)QSTR_INIT(slash + 1, strlen(slash + 1));
	if (!d_is_dir(dir->dentry)) {
		path_put(dir);
		return -ENOTDIR;
	}
	return 0;
}

/* Refresh the cached attributes (size, times) from the file server. */
static void refresh(const struct path *p)
{
	struct kstat st;

	vfs_getattr(p, &st, STATX_BASIC_STATS, AT_STATX_FORCE_SYNC);
}

static int on_created(const char *name)
{
	struct path p;
	struct dentry *parent;
	struct inode *inode;
	int err = reval(name, &p);

	if (err)
		return err;
	refresh(&p);
	inode = d_inode(p.dentry);
	parent = dget_parent(p.dentry);
	fsnotify_name(FS_CREATE | (d_is_dir(p.dentry) ? FS_ISDIR : 0), p.dentry, FSNOTIFY_EVENT_DENTRY,
		      d_inode(parent), &p.dentry->d_name, 0);
	dput(parent);
	if (S_ISREG(inode->i_mode)) {
		if (i_size_read(inode) > 0)
			fsnotify_dentry(p.dentry, FS_MODIFY);
		fsnotify_dentry(p.dentry, FS_CLOSE_WRITE);
	}
	path_put(&p);
	return 0;
}

static int on_changed(const char *name, __u32 mask)
{
	struct path p;
	int err = reval(name, &p);

	if (err)
		return err;
	refresh(&p);
	if (mask & FS_MODIFY) {
		fsnotify_dentry(p.dentry, FS_MODIFY);
		fsnotify_dentry(p.dentry, FS_CLOSE_WRITE);
	} else {
		fsnotify_dentry(p.dentry, mask);
	}
	path_put(&p);
	return 0;
}

/*
 * `name` is gone on the host (the engine looked just before it asked): a
 * fresh lookup drops the guest's cached entry. Whether it was a folder, the
 * cached entry says. A file system with caches of its own (sshfs keeps
 * names for a second) may still answer for it; the event is sent anyway.
 */
static void gone(const char *name, bool *isdir)
{
	struct path p;

	if (!kern_path(name, 0, &p)) {
		*isdir = d_is_dir(p.dentry);
		path_put(&p);
	}
	if (!reval(name, &p))
		path_put(&p);
}

static int on_deleted(char *name)
{
	struct path dir;
	struct qstr last;
	bool isdir = false;
	int err;

	gone(name, &isdir);
	err = parent_of(name, &dir, &last);
	if (err)
		return err;
	fsnotify_name(FS_DELETE | (isdir ? FS_ISDIR : 0), d_inode(dir.dentry), FSNOTIFY_EVENT_INODE,
		      d_inode(dir.dentry), &last, 0);
	path_put(&dir);
	return 0;
}

static int on_renamed(char *from, const char *to)
{
	struct path old_dir, moved;
	struct dentry *new_parent;
	struct qstr old_name;
	struct inode *source;
	bool isdir = false;
	__u32 isdir_mask;
	u32 cookie;
	int err;

	gone(from, &isdir);
	err = reval(to, &moved);
	if (err)
		return err;
	err = parent_of(from, &old_dir, &old_name);
	if (err) {
		path_put(&moved);
		return err;
	}
	source = d_inode(moved.dentry);
	isdir_mask = d_is_dir(moved.dentry) ? FS_ISDIR : 0;
	new_parent = dget_parent(moved.dentry);
	cookie = fsnotify_get_cookie();
	fsnotify_name(FS_MOVED_FROM | isdir_mask, source, FSNOTIFY_EVENT_INODE, d_inode(old_dir.dentry), &old_name,
		      cookie);
	fsnotify_name(FS_MOVED_TO | isdir_mask, source, FSNOTIFY_EVENT_INODE, d_inode(new_parent),
		      &moved.dentry->d_name, cookie);
	fsnotify_inode(source, FS_MOVE_SELF);
	dput(new_parent);
	path_put(&old_dir);
	path_put(&moved);
	return 0;
}

/*
 * Whether anything watches the file system `name` lies on, from a cached
 * lookup of its folder (no trip to the file server when the guest knows
 * it). With no inotify or fanotify mark on any inode or mount of that file
 * system the events would reach nobody (the kernel makes the same test
 * before it sends any), and the fresh lookups they need are round trips to
 * the file server that compete with the guest's own work on the share: a
 * container unpacking node_modules into it has every file it writes come
 * back from the host as a change.
 */
static bool watched(char *name)
{
	char *slash = strrchr(name, '/');
	struct path dir;
	bool yes = true;

	if (!slash || slash == name)
		return true;
	*slash = '\0';
	if (!kern_path(name, 0, &dir)) {
		yes = fsnotify_sb_has_watchers(dir.dentry->d_sb);
		path_put(&dir);
	}
	*slash = '/';
	return yes;
}

static ssize_t notify_write(struct file *file, const char __user *ubuf, size_t len, loff_t *off)
{
	char *buf, *name, *second;
	int err;

	if (len < 3 || len > 2 * PATH_MAX + 3)
		return -EINVAL;
	buf = memdup_user_nul(ubuf, len);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	name = buf + 2;
	err = -EINVAL;
	if (buf[1] != ' ' || name[0] != '/')
		goto out;
	err = 0;
	if (!watched(name))
		goto out;
	err = -EINVAL;
	if (buf[0] == 'r') {
		second = name + strlen(name) + 1;
		if (second >= buf + len || second[0] != '/')
			goto out;
		err = on_renamed(name, second);
		goto out;
	}
	if (strlen(name) != len - 2)
		goto out;
	switch (buf[0]) {
	case 'c':
		err = on_created(name);
		break;
	case 'm':
		err = on_changed(name, FS_MODIFY);
		break;
	case 'a':
		err = on_changed(name, FS_ATTRIB);
		break;
	case 'd':
		err = on_deleted(name);
		break;
	}
out:
	kfree(buf);
	return err ? err : (ssize_t)len;
}

static const struct proc_ops notify_ops = {
	.proc_write = notify_write,
	.proc_lseek = noop_llseek,
};

static int __init berth_notify_init(void)
{
	return proc_create("berth-notify", 0200, NULL, &notify_ops) ? 0 : -ENOMEM;
}

static void __exit berth_notify_exit(void)
{
	remove_proc_entry("berth-notify", NULL);
}

module_init(berth_notify_init);
module_exit(berth_notify_exit);
