# UDP over the ssh channel: framed datagrams to HOST PORT and back; ends
# with its stdin (forward/udp-relay.ts). Arguments: HOST PORT.
use strict; use IO::Socket::IP; use IO::Select;
binmode STDIN; binmode STDOUT; $| = 1;
my ($host, $port) = @ARGV;
my $sel = IO::Select->new(\*STDIN);
my (%sock, %id, %last); my $buf = '';
while (1) {
  for my $fh ($sel->can_read(5)) {
    if (fileno($fh) == 0) {
      my $n = sysread(STDIN, $buf, 65536, length $buf);
      exit 0 unless $n;
      while (length($buf) >= 6) {
        my ($cid, $len) = unpack('Nn', $buf);
        last if length($buf) < 6 + $len;
        my $data = substr($buf, 6, $len);
        substr($buf, 0, 6 + $len) = '';
        my $s = $sock{$cid};
        if (!$s) {
          $s = IO::Socket::IP->new(PeerHost => $host, PeerPort => $port, Proto => 'udp') or next;
          $sock{$cid} = $s; $id{fileno $s} = $cid; $sel->add($s);
        }
        send($s, $data, 0);
        $last{$cid} = time;
      }
    } else {
      my $cid = $id{fileno $fh};
      my $data;
      if (defined recv($fh, $data, 65536, 0)) {
        syswrite(STDOUT, pack('Nn', $cid, length $data) . $data);
        $last{$cid} = time;
      }
    }
  }
  for my $cid (keys %sock) {
    next if time - $last{$cid} < 120;
    my $s = delete $sock{$cid};
    $sel->remove($s); delete $id{fileno $s}; close $s;
  }
}
