# host.docker.internal where the guest's network does not reach the host's
# loopback (vfkit's NAT, Hyper-V's switch: forward/host-relay.ts). Puts
# ADDR and LISTEN on the guest's lo; iptables sends every TCP connection to
# ADDR, from the guest itself and from containers, to LISTEN:PORT, where
# this listens (another address, so that every port of ADDR is the host's);
# each connection goes on to SOCKET (the engine's ssh forward) after two
# bytes that name the port it was made to. Ends with its stdin.
# Arguments: ADDR LISTEN PORT SOCKET.
use strict; use Socket qw(SOCK_STREAM);
use IO::Socket::IP; use IO::Socket::UNIX; use IO::Select; use POSIX ();
my ($addr, $listen, $port, $path) = @ARGV;
my $bb = '/bin/busybox';
sub run { system(@_) == 0 }
for my $a ($addr, $listen) {
  next if `$bb ip -4 -o addr show dev lo` =~ /\binet \Q$a\E\//;
  run($bb, 'ip', 'addr', 'add', "$a/32", 'dev', 'lo') or die "cannot put $a on lo\n";
}
for my $chain ('PREROUTING', 'OUTPUT') {
  my @rule = ($chain, '-d', "$addr/32", '-p', 'tcp', '-j', 'DNAT', '--to-destination', "$listen:$port");
  run('iptables', '-w', '-t', 'nat', '-C', @rule) or run('iptables', '-w', '-t', 'nat', '-I', @rule) or die "iptables refused the $chain rule\n";
}
# The relay of an ssh connection that just went may hold the port a moment longer.
my $srv;
for (1 .. 50) {
  last if $srv = IO::Socket::IP->new(LocalHost => $listen, LocalPort => $port, Listen => 128, ReuseAddr => 1);
  select(undef, undef, undef, 0.1);
}
$srv or die "cannot listen on $listen:$port: $@\n";
print STDERR "listening\n";
$SIG{CHLD} = 'IGNORE';
my $sel = IO::Select->new(\*STDIN, $srv);
while (1) {
  for my $fh ($sel->can_read) {
    if ($fh != $srv) { my $b; exit 0 unless sysread(STDIN, $b, 4096); next }
    my $c = $srv->accept or next;
    my $pid = fork;
    if (defined $pid && $pid == 0) { close $srv; serve($c); POSIX::_exit(0) }
    close $c;
  }
}

# One connection: the port it was made to (SO_ORIGINAL_DST), then bytes both ways.
sub serve {
  my ($c) = @_;
  # A struct sockaddr_in (Perl hands back a longer buffer): the port is the big-endian u16 after the family.
  my $orig = getsockopt($c, 0, 80) or return;
  my $to = unpack('x2 n', $orig) or return;
  my $up = IO::Socket::UNIX->new(Peer => $path, Type => SOCK_STREAM) or return;
  syswrite($up, pack('n', $to)) == 2 or return;
  my %peer = (fileno($c) => $up, fileno($up) => $c);
  my $s = IO::Select->new($c, $up);
  while ($s->count) {
    for my $fh ($s->can_read) {
      my $n = sysread($fh, my $buf, 65536);
      my $other = $peer{fileno $fh};
      if (!$n) { shutdown($other, 1); $s->remove($fh); next }
      for (my $off = 0; $off < $n;) { my $w = syswrite($other, $buf, $n - $off, $off); return unless $w; $off += $w }
    }
  }
}
