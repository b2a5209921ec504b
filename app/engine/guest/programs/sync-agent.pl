# The guest side of a synced folder (share/sync-guest.ts): scan, hash or
# apply changes in the guest copy. Arguments: MODE ROOT STAGE TEMP_PREFIX.
# It starts once per look or change, so it loads only Time::HiRes: warnings,
# Fcntl and File::Path made up half of its start-up time.
use strict;
use Time::HiRes ();
my ($mode, $root, $stage, $TMP) = @ARGV;
chdir $root or die "cannot enter $root: $!\n";
binmode STDIN; binmode STDOUT;
my $n = 0;
sub S_ISDIR { ($_[0] & 0170000) == 0040000 }
sub S_ISLNK { ($_[0] & 0170000) == 0120000 }
sub S_ISREG { ($_[0] & 0170000) == 0100000 }
# mkdir -p; true when the folder is there.
sub mkpath {
  my ($d) = @_;
  return 1 if -d $d;
  my $i = rindex($d, '/');
  mkpath(substr($d, 0, $i)) if $i > 0;
  return mkdir($d) || -d $d;
}
# rm -rf, never following a link.
sub rmtree {
  my ($d) = @_;
  return unlink($d) if -l $d || !-d _;
  opendir(my $dh, $d) or return 0;
  my @names = grep { $_ ne '.' && $_ ne '..' } readdir($dh);
  closedir $dh;
  rmtree("$d/$_") for @names;
  return rmdir($d);
}
sub ent {
  my ($p) = @_;
  my @st = Time::HiRes::lstat($p);
  return () unless @st;
  my $m = $st[2];
  if (S_ISLNK($m)) { my $t = readlink($p); $t = '' unless defined $t; return ('link', "l:$t", $t); }
  if (S_ISDIR($m)) { return ('dir', '', ''); }
  if (S_ISREG($m)) { return ('file', sprintf('%d:%.6f:%d:%s', $st[7], $st[9], $st[1], ($m & 0111) ? 'x' : '-'), $st[7]); }
  return ('other', '', '');
}
sub out { print join("\0", @_), "\0"; }
sub matches {
  my ($p, $ek, $es) = @_;
  my ($k, $s) = ent($p);
  return !defined $k if $ek eq '';
  return defined $k && $k eq $ek && ($k eq 'dir' || $s eq $es);
}
sub parent {
  my ($p) = @_;
  my $i = rindex($p, '/');
  return 1 if $i < 0;
  my $d = substr($p, 0, $i);
  return 1 if -d $d;
  return mkpath($d);
}
# Every entry under folder $d ('' for the root), folders first in, as (kind, path, sig, extra).
sub walk {
  my @dirs = @_;
  while (@dirs) {
    my $d = shift @dirs;
    opendir(my $dh, $d eq '' ? '.' : $d) or next;
    my @names = grep { $_ ne '.' && $_ ne '..' && index($_, $TMP) != 0 } readdir($dh);
    closedir $dh;
    for my $name (@names) {
      my $p = $d eq '' ? $name : "$d/$name";
      my ($k, $sig, $x) = ent($p);
      next unless defined $k && $k ne 'other';
      out($k, $p, $sig, $x);
      push @dirs, $p if $k eq 'dir';
    }
  }
}
if ($mode eq 'scan') {
  walk('');
  exit 0;
}
# Only some paths (the watcher named them): stdin holds (flag, path) pairs,
# flag 'd' (the path, and everything under it if a folder) or 's' (the path
# alone). A path under something that is not a real folder holds nothing,
# as in a whole scan (never looked up through a link).
if ($mode eq 'look') {
  local $/ = "\0";
  my %isdir = ('' => 1);
  my $under = sub {
    my ($p) = @_;
    my $i = rindex($p, '/');
    my $d = $i < 0 ? '' : substr($p, 0, $i);
    return $isdir{$d} if exists $isdir{$d};
    my $ok = 1;
    my $sofar = '';
    for my $c (split m{/}, $d) {
      $sofar = $sofar eq '' ? $c : "$sofar/$c";
      if (!exists $isdir{$sofar}) { my @st = lstat($sofar); $isdir{$sofar} = (@st && S_ISDIR($st[2])) ? 1 : 0; }
      if (!$isdir{$sofar}) { $ok = 0; last; }
    }
    return $isdir{$d} = $ok;
  };
  while (defined(my $flag = <STDIN>)) {
    my $p = <STDIN>;
    last unless defined $p;
    chomp $flag; chomp $p;
    next if $p eq '' || grep { $_ eq '' || $_ eq '.' || $_ eq '..' || index($_, $TMP) == 0 } split m{/}, $p, -1;
    next unless $under->($p);
    my ($k, $sig, $x) = ent($p);
    next unless defined $k && $k ne 'other';
    out($k, $p, $sig, $x);
    walk($p) if $k eq 'dir' && $flag eq 'd';
  }
  exit 0;
}
if ($mode eq 'hash') {
  require Digest::SHA;
  local $/ = "\0";
  while (my $p = <STDIN>) {
    chomp $p;
    my $h = eval { Digest::SHA->new(256)->addfile($p, 'b')->hexdigest } // '';
    out($p, $h);
  }
  exit 0;
}
# Apply ops (NUL fields: op, then its arguments), one result line each.
sub apply_ops {
  my @f = @_;
  my %arity = (save => 4, del => 3, mkdir => 1, place => 3, link => 4);
  while (@f) {
    my $op = shift @f;
    my $k = $arity{$op} or die "unknown op $op\n";
    my @a = splice(@f, 0, $k);
    my $p = $a[0];
    my ($st, $info) = ('ok', '');
    if ($op eq 'save') {
      my ($to, $ek, $es) = @a[1..3];
      if (!matches($p, $ek, $es)) { ($st, $info) = ('skip', 'changed'); }
      elsif (-e $to || -l $to) { ($st, $info) = ('skip', 'taken'); }
      elsif (!rename($p, $to)) { ($st, $info) = ('err', "$!"); }
    } elsif ($op eq 'del') {
      my ($ek, $es) = @a[1..2];
      my ($k) = ent($p);
      if (!defined $k) { }
      elsif (!matches($p, $ek, $es)) { ($st, $info) = ('skip', 'changed'); }
      elsif ($k eq 'dir') { rmdir($p) or ($st, $info) = ($!{ENOTEMPTY} || $!{EEXIST} ? 'skip' : 'err', "$!"); }
      else { unlink($p) or ($st, $info) = ('err', "$!"); }
    } elsif ($op eq 'mkdir') {
      my ($k) = ent($p);
      if (defined $k && $k ne 'dir') { ($st, $info) = ('skip', 'taken'); }
      elsif (!defined $k) { mkpath($p) or ($st, $info) = ('err', "$!"); }
    } elsif ($op eq 'place') {
      my ($ek, $es) = @a[1..2];
      if (!matches($p, $ek, $es)) { ($st, $info) = ('skip', 'changed'); unlink("$stage/$p"); }
      elsif (!parent($p)) { ($st, $info) = ('err', 'cannot make its folder'); }
      elsif (!rename("$stage/$p", $p)) { ($st, $info) = ('err', "$!"); }
      else { (undef, $info) = ent($p); }
    } elsif ($op eq 'link') {
      my ($t, $ek, $es) = @a[1..3];
      my $tmp = $p =~ m{^(.*/)} ? "$1$TMP$$-" . $n++ : "$TMP$$-" . $n++;
      if (!matches($p, $ek, $es)) { ($st, $info) = ('skip', 'changed'); }
      elsif (!parent($p)) { ($st, $info) = ('err', 'cannot make its folder'); }
      elsif (!symlink($t, $tmp)) { ($st, $info) = ('err', "$!"); }
      elsif (!rename($tmp, $p)) { ($st, $info) = ('err', "$!"); unlink($tmp); }
      else { (undef, $info) = ent($p); }
    }
    out($st, $p, $info);
  }
}
sub split_ops {
  my @f = split /\0/, $_[0] // '', -1;
  pop @f if @f && $f[-1] eq '';
  return @f;
}
if ($mode eq 'apply') {
  local $/;
  apply_ops(split_ops(scalar <STDIN>));
  exit 0;
}
# Files in one go: stdin holds the ops' length in bytes and a newline, the
# ops, then a tar stream that GNU tar unpacks into the (new) staging folder
# STAGE; then the ops place the files, and STAGE is removed. One round trip
# where push, apply and cleanup took three.
if ($mode eq 'push') {
  my ($len, $c) = ('', '');
  while (1) {
    sysread(STDIN, $c, 1) or die "no ops header\n";
    last if $c eq "\n";
    die "bad ops header\n" if $c !~ /^\d$/ || length($len) > 12;
    $len .= $c;
  }
  my $ops = '';
  while (length($ops) < $len) { sysread(STDIN, $ops, $len - length($ops), length($ops)) or die "short ops\n"; }
  mkpath($stage) or die "cannot make $stage: $!\n";
  # tar reads the rest of stdin: nothing of it was read ahead (sysread).
  my $pid = fork() // die "fork: $!\n";
  if (!$pid) { chdir $stage or exit 126; exec('tar', '-x', '-f', '-', '--no-same-owner') or exit 127; }
  waitpid($pid, 0);
  if ($? != 0) { rmtree($stage); die 'tar exited ' . ($? >> 8) . "\n"; }
  apply_ops(split_ops($ops));
  rmtree($stage);
  exit 0;
}
die "unknown mode $mode\n";
