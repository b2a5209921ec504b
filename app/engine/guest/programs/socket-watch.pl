# Prints the guest's listening sockets whenever they change; ends with its
# stdin (forward/guest-socket-watcher.ts). It looks every
# BERTH_WATCH_INTERVAL seconds for BERTH_WATCH_BUSY seconds (30) after a
# change or a "look" line on stdin (the engine saw docker in use), every
# BERTH_WATCH_IDLE_INTERVAL seconds otherwise: an idle guest wakes seldom.
# EOF, or anything but "look" lines, ends it.
use strict; use Socket qw(SOCK_DGRAM inet_ntop); use IO::Select;
$| = 1;
my $iv = $ENV{BERTH_WATCH_INTERVAL} || 0.5;
my $idle = $ENV{BERTH_WATCH_IDLE_INTERVAL} || $iv;
my $busy = $ENV{BERTH_WATCH_BUSY} || 30;
my $last = time;
my $stdin = IO::Select->new(\*STDIN);
my $nl; socket($nl, 16, SOCK_DGRAM, 4) or undef $nl;
my $kernel = pack('SSLL', 16, 0, 0, 0);
my $seq = 0;
sub diag { my ($fam, $proto, $states, $tag) = @_;
  my $req = pack('CCCCL', $fam, $proto, 0, 0, $states) . ("\0" x 48);
  send($nl, pack('LSSLL', 16 + length $req, 20, 0x301, ++$seq, 0) . $req, 0, $kernel) or return ();
  my @out;
  while (1) {
    my $buf; defined recv($nl, $buf, 65536, 0) or return @out;
    while (length($buf) >= 16) {
      my ($len, $type) = unpack('LS', $buf);
      return @out if $type == 2 || $type == 3 || $len < 16;
      my ($f, undef, undef, undef, $port, undef, $src) = unpack('CCCCnna16', substr($buf, 16, $len - 16));
      push @out, "$tag/" . inet_ntop($f, $f == 2 ? substr($src, 0, 4) : $src) . "/$port";
      substr($buf, 0, ($len + 3) & ~3) = '';
    }
  }
}
sub table { my ($f, $st, $tag) = @_; open(my $h, '<', $f) or return (); local $/; my $d = <$h>; close $h;
  return map { "$tag$_" } $d =~ /^\s*\d+:\s+([0-9A-F]+:[0-9A-F]{4})\s+\S+\s+$st\s/mg; }
my $prev = 'x';
my $pend = '';
while (1) {
  my $cur = $nl
    ? join(' ', diag(2, 6, 1 << 10, 't'), diag(10, 6, 1 << 10, 't'), diag(2, 17, 1 << 7, 'u'), diag(10, 17, 1 << 7, 'u'))
    : join(' ', table('/proc/net/tcp', '0A', 't'), table('/proc/net/tcp6', '0A', 't'), table('/proc/net/udp', '07', 'u'), table('/proc/net/udp6', '07', 'u'));
  if ($cur ne $prev) { print "= $cur\n"; $prev = $cur; $last = time; }
  next unless $stdin->can_read(time - $last < $busy ? $iv : $idle);
  my $got = sysread(STDIN, my $in, 4096);
  exit 0 unless $got;
  # Whole "look" lines are taken; what is left must be the start of one.
  $pend .= $in;
  1 while $pend =~ s/\Alook\n//;
  exit 0 unless length($pend) < 5 && index("look\n", $pend) == 0;
  $last = time;
}
