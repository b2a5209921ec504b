# Keeps the guest's cache of FUSE files (virtio-fs and sshfs shares) below a
# mark, so that virtiofsd, which holds one open file on the host for each
# of them, stays under its open-files limit (share/fuse-valve.ts). Args:
# MARK [FAST_S SLOW_S [COUNT_FILE DROP_FILE]].
# It counts the kernel's fuse_inode objects: every FAST_S / 5 seconds for
# 100 ms after the count grew by a twentieth of MARK from one look to the next,
# every FAST_S while it is above a quarter of MARK, every SLOW_S otherwise.
# When the count passes MARK it writes 2 to drop_caches: the kernel lets go of every
# name and file it does not use, and FUSE tells virtiofsd to forget them.
# A drop that leaves the count above half the mark (the files may be in
# use) waits twice as long before the next one, up to 5 s: no drop storm.
# Unless the count has grown by a quarter of the mark since that drop: a
# walk is looking files up, and a wait would let it pass the limit (under
# TCG a walk looks up some 15,000 files a second, and a drop takes ~250 ms,
# so the count after a drop during a walk is no sign of files in use).
# It prints "drop BEFORE AFTER MS" each time, and "none WHY" and ends when
# it cannot count. EOF on stdin, or anything on it, ends it.
use strict; use IO::Select; use Time::HiRes qw(time);
$| = 1;
my ($mark, $fast, $slow, $countFile, $dropFile) = @ARGV;
die "usage: MARK [FAST_S SLOW_S [COUNT_FILE DROP_FILE]]\n" unless defined $mark && $mark =~ /^\d+$/ && $mark > 0;
$fast ||= 0.05; $slow ||= 0.25;
$dropFile ||= '/proc/sys/vm/drop_caches';
my @sources = $countFile ? ([$countFile, qr/^(\d+)/]) : (['/sys/kernel/slab/fuse_inode/objects', qr/^(\d+)/], ['/proc/slabinfo', qr/^fuse_inode\s+(\d+)/m]);
sub count {
  for my $s (@sources) {
    open(my $h, '<', $s->[0]) or next;
    local $/; my $t = <$h>; close $h;
    return $1 if defined $t && $t =~ $s->[1];
  }
  return undef;
}
my $stdin = IO::Select->new(\*STDIN);
my $n = count();
unless (defined $n) { print "none no fuse_inode count in ", join(' or ', map { $_->[0] } @sources), "\n"; exit 0; }
my ($next, $wait, $last, $prev, $hot) = (0, 0, 0, 0, 0);
while (1) {
  if ($n > $mark && (time >= $next || $n - $last >= $mark / 4)) {
    my $t0 = time;
    if (open(my $d, '>', $dropFile)) { print $d "2\n"; close $d; }
    else { print "none cannot write $dropFile: $!\n"; exit 0; }
    my $after = count() // 0;
    printf "drop %d %d %d\n", $n, $after, (time - $t0) * 1000;
    $wait = $after * 2 > $mark ? ($wait ? ($wait * 2 > 5 ? 5 : $wait * 2) : $fast * 2) : 0;
    $next = time + $wait;
    $last = $after;
  }
  # While the count grows (a walk), look five times as often: a walk looks
  # up a file every ~40 us under TCG here, some 1,300 between two looks at
  # FAST_S. Once in CI a walk passed the limit all the same (whether a late
  # look or virtiofsd closing files after the guest let go of them is not
  # known); this narrows the first.
  $hot = time + 0.1 if $n - $prev >= $mark / 20;
  exit 0 if $stdin->can_read(time < $hot ? $fast / 5 : $n * 4 > $mark ? $fast : $slow);
  $prev = $n;
  $n = count() // 0;
}
