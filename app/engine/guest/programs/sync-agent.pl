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
# Fields go to stdout, or (serving) to the answer being made.
my $OUT;
sub out {
  my $s = join("\0", @_) . "\0";
  if ($OUT) { $$OUT .= $s } else { print $s }
}
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
sub look {
  my @f = @_;
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
  while (@f >= 2) {
    my ($flag, $p) = splice(@f, 0, 2);
    next if $p eq '' || grep { $_ eq '' || $_ eq '.' || $_ eq '..' || index($_, $TMP) == 0 } split m{/}, $p, -1;
    next unless $under->($p);
    my ($k, $sig, $x) = ent($p);
    next unless defined $k && $k ne 'other';
    out($k, $p, $sig, $x);
    walk($p) if $k eq 'dir' && $flag eq 'd';
  }
}
sub hash {
  require Digest::SHA;
  for my $p (@_) {
    my $h = eval { Digest::SHA->new(256)->addfile($p, 'b')->hexdigest } // '';
    out($p, $h);
  }
}
# Apply ops (NUL fields: op, then its arguments), one result line each.
sub apply_ops {
  my @f = @_;
  my %arity = (save => 4, del => 3, mkdir => 1, place => 3, link => 4);
  # Folders the places went into so far (a stat per file otherwise; one
  # removed meanwhile fails its rename, and the next cycle places it again).
  my %dirs;
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
      elsif (!($dirs{rindex($p, '/') < 0 ? '' : substr($p, 0, rindex($p, '/'))} ||= parent($p))) { ($st, $info) = ('err', 'cannot make its folder'); }
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
sub stdin_all { local $/; my $in = <STDIN>; return $in // ''; }
if ($mode eq 'look') { look(split_ops(stdin_all())); exit 0; }
if ($mode eq 'hash') { hash(split_ops(stdin_all())); exit 0; }
if ($mode eq 'apply') { apply_ops(split_ops(stdin_all())); exit 0; }
# Read exactly $len bytes of stdin (never ahead: a tar may read the rest).
sub readn {
  my ($len) = @_;
  my $buf = '';
  while (length($buf) < $len) { sysread(STDIN, $buf, $len - length($buf), length($buf)) or die "short input\n"; }
  return $buf;
}
# A length and a newline on stdin, read a byte at a time; undef at the end of input.
sub readlen {
  my ($len, $c) = ('', '');
  while (1) {
    my $r = sysread(STDIN, $c, 1);
    return undef if !$r && $len eq '';
    die "bad length\n" if !$r;
    return $len if $c eq "\n" && $len ne '';
    die "bad length\n" if $c !~ /^\d$/ || length($len) > 12;
    $len .= $c;
  }
}
# The files of a tar held in memory, checked whole before anything is
# written (a bad tar writes nothing): [path, mode, mtime, offset, size] each.
# Only what node-tar writes for a push (sync-transfer.ts): ustar files and
# folders, pax headers (path, mtime). Starting GNU tar for it cost ~65 ms
# under emulation, most of a small edit's trip.
sub oct_field { my $v = $_[0]; $v =~ s/[\0 ]+\z//; $v =~ s/\A *//; die "bad tar number\n" if $v !~ /\A[0-7]{0,12}\z/; return oct($v || '0'); }
sub tar_entries {
  my ($tar) = @_;
  my ($off, %pax, @files) = (0);
  while ($off + 512 <= length $tar) {
    my $h = substr($tar, $off, 512);
    last if $h eq "\0" x 512;
    my ($name, $mode, $size, $mtime, $type, $prefix) = map { s/\0.*//sr } unpack('a100 a8 x16 a12 a12 x8 a1 x100 x6 x2 x32 x32 x8 x8 a155', $h);
    ($mode, $size, $mtime) = map { oct_field($_) } ($mode, $size, $mtime);
    my $at = $off + 512;
    die "short tar\n" if $at + $size > length $tar;
    $off = $at + 512 * int(($size + 511) / 512);
    if ($type eq 'x') {
      my $body = substr($tar, $at, $size);
      while ($body =~ /\G(\d+) ([^=\n]+)=/gc) {
        my ($len, $key, $start) = ($1, $2, pos($body));
        my $vlen = $len - length("$len $key=\n");
        die "bad pax record\n" if $vlen < 0;
        $pax{$key} = substr($body, $start, $vlen);
        pos($body) = $start + $vlen + 1;
      }
      next;
    }
    next if $type eq 'g';
    my $p = $pax{path} // ($prefix ne '' ? "$prefix/$name" : $name);
    $mtime = $pax{mtime} if defined $pax{mtime} && $pax{mtime} =~ /\A\d+(?:\.\d+)?\z/;
    %pax = ();
    $p =~ s{/+\z}{};
    die "bad path in tar: $p\n" if $p eq '' || $p =~ m{\A/|(?:\A|/)\.\.?(?:/|\z)};
    next if $type eq '5';
    die "unexpected tar entry type $type\n" unless $type eq '0' || $type eq "\0" || $type eq '';
    push @files, [$p, $mode, $mtime, $at, $size];
  }
  return @files;
}
# Unpack a tar held in memory into the staging folder, as `tar -x
# --no-same-owner` run as root would: files with their mode and mtime, and
# their folders. Straight system calls, each folder made once: PerlIO, a
# stat per file and a chmod the umask did not need were a tenth to a fifth
# of a push's time in the guest under emulation (1,000 files: 0.47-0.63 s
# before, 0.42-0.50 s after, Perl's own start left out).
my $UMASK = umask;
sub untar {
  my ($tar) = @_;
  my %made;
  for my $e (tar_entries($tar)) {
    my ($p, $m, $mtime, $at, $size) = @$e;
    $m &= 07777;
    my $i = rindex($p, '/');
    my $d = $i < 0 ? $stage : "$stage/" . substr($p, 0, $i);
    $made{$d} ||= mkpath($d) or die "cannot make the folder of $p: $!\n";
    # O_WRONLY | O_CREAT | O_TRUNC: the same bits on x86_64 and arm64.
    sysopen(my $f, "$stage/$p", 01 | 0100 | 01000, $m) or die "cannot write $p: $!\n";
    for (my $end = $at + $size; $at < $end;) {
      my $w = syswrite($f, $tar, $end - $at, $at) or die "cannot write $p: $!\n";
      $at += $w;
    }
    close($f) or die "cannot write $p: $!\n";
    chmod($m, "$stage/$p") if $m & $UMASK;
    Time::HiRes::utime($mtime, $mtime, "$stage/$p");
  }
}
# Unpack a tar into the (new) staging folder, place the ops' files from
# there, remove it. The tar comes from stdin ($tar undef: GNU tar reads
# the stream) or a string (unpacked here).
sub push_files {
  my ($ops, $tar) = @_;
  mkpath($stage) or die "cannot make $stage: $!\n";
  if (defined $tar) {
    eval { untar($tar); 1 } or do { my $e = $@; rmtree($stage); die $e; };
  } else {
    my $pid = fork();
    die "fork: $!\n" unless defined $pid;
    if (!$pid) { chdir $stage or exit 126; exec('tar', '-x', '-f', '-', '--no-same-owner') or exit 127; }
    waitpid($pid, 0);
    if ($? != 0) { rmtree($stage); die 'tar exited ' . ($? >> 8) . "\n"; }
  }
  apply_ops(split_ops($ops));
  rmtree($stage);
}
# A ustar header for a regular file; a pax header before it for a path
# that does not fit. Mode, size and whole-second mtime as `tar -c` (GNU
# format) gives them; owners 0.
sub tar_header {
  my ($name, $mode, $size, $mtime, $type) = @_;
  my $h = pack('a100 a8 a8 a8 a12 a12 A8 a1 a100 a6 a2 a32 a32 a8 a8 a155 x12',
    $name, sprintf('%07o', $mode & 07777), '0000000', '0000000', sprintf('%011o', $size), sprintf('%011o', $mtime),
    '', $type, '', "ustar\0", '00', '', '', '', '', '');
  my $sum = unpack('%32C*', $h);
  substr($h, 148, 8) = sprintf("%06o\0 ", $sum);
  return $h;
}
sub pad512 { my $n = length($_[0]) % 512; return $n ? "\0" x (512 - $n) : ''; }
# The files at these paths (regular files only; anything else, or a file
# gone, is left out), as a tar, while their bytes stay within $cap: one
# that would pass it is left out too (its caller fetches it on its own).
sub tar_files {
  my ($cap, @paths) = @_;
  my $tar = '';
  for my $p (@paths) {
    my @st = Time::HiRes::lstat($p);
    next unless @st && S_ISREG($st[2]) && $st[7] <= $cap;
    # O_NONBLOCK (the same bit on x86_64 and arm64): a FIFO put there since the lstat cannot hold it.
    sysopen(my $f, $p, 04000) or next;
    binmode $f;
    if (!-f $f) { close($f); next; }
    my $body = '';
    my $r;
    1 while ($r = read($f, $body, 65536, length $body)) && length($body) <= $cap;
    close($f);
    next if !defined $r || length($body) > $cap;
    $cap -= length $body;
    if (length($p) > 100) {
      my $rec = " path=$p\n";
      my $len = length($rec);
      $len++ while length($len . $rec) != $len;
      my $pax = "$len$rec";
      $tar .= tar_header('././@PaxHeader', 0644, length($pax), 0, 'x') . $pax . pad512($pax);
    }
    $tar .= tar_header(substr($p, 0, 100), $st[2], length($body), $st[9] > 0 ? int($st[9]) : 0, '0') . $body . pad512($body);
  }
  return $tar . ("\0" x 1024);
}
# Files in one go: stdin holds the ops' length in bytes and a newline, the
# ops, then a tar stream that GNU tar unpacks into the (new) staging folder
# STAGE; then the ops place the files, and STAGE is removed. One round trip
# where push, apply and cleanup took three.
if ($mode eq 'push') {
  my $len = readlen() // die "no ops header\n";
  push_files(readn($len));
  exit 0;
}
# Kept running for a synced folder's looks and changes (sync-agent-link.ts):
# each request is a length and a newline, then that many bytes: MODE, STAGE
# and what MODE reads on stdin when run alone, MODE and STAGE each ended by a
# NUL (push: its ops' length, a newline, the ops and the whole tar). Each
# answer is `ok LEN` or `err LEN`, a newline, and LEN bytes: the fields MODE
# prints, or why it failed. The end of input ends it.
if ($mode eq 'serve') {
  $SIG{PIPE} = 'IGNORE';
  while (defined(my $len = readlen())) {
    my ($m, $st, $in) = split /\0/, readn($len), 3;
    my $buf = '';
    $OUT = \$buf;
    my $ok = eval {
      # Entered again each time: the copy may have been removed and made anew since.
      chdir $root or die "cannot enter $root: $!\n";
      $in //= '';
      if ($m eq 'look') { look(split_ops($in)); }
      elsif ($m eq 'hash') { hash(split_ops($in)); }
      elsif ($m eq 'apply') { $stage = $st; apply_ops(split_ops($in)); }
      elsif ($m eq 'push') {
        $stage = $st;
        my ($oplen, $rest) = $in =~ /\A(\d{1,12})\n(.*)\z/s or die "no ops header\n";
        push_files(substr($rest, 0, $oplen), substr($rest, $oplen));
      } elsif ($m eq 'pull') {
        my ($cap, @paths) = split_ops($in);
        die "bad pull\n" if !defined $cap || $cap !~ /\A\d{1,12}\z/;
        $buf = tar_files($cap, @paths);
      } else { die "unknown request $m\n"; }
      1;
    };
    $OUT = undef;
    $buf = "$@" unless $ok;
    my $answer = ($ok ? 'ok ' : 'err ') . length($buf) . "\n" . $buf;
    while (length $answer) {
      my $w = syswrite(STDOUT, $answer);
      die "cannot answer: $!\n" unless defined $w;
      substr($answer, 0, $w) = '';
    }
  }
  exit 0;
}
die "unknown mode $mode\n";
