# Touches guest paths with their own times so file watchers in containers
# see host edits (share/change-notifier.ts). One line per path on stdin.
$| = 1;
my ($nr_statx, $nr_utimensat);
eval { require 'syscall.ph'; $nr_statx = &SYS_statx; $nr_utimensat = &SYS_utimensat; 1 };
# statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_ATIME|STATX_MTIME): the
# current times from the file server, not the guest's attribute cache.
sub fresh {
  my ($p) = @_;
  return () unless $nr_statx;
  my $buf = "\0" x 256;
  return () unless syscall($nr_statx, -100, $p, 0x2000, 0x60, $buf) == 0;
  my ($as, $ans) = unpack('q L', substr($buf, 64, 12));
  my ($ms, $mns) = unpack('q L', substr($buf, 112, 12));
  return ($as, $ans, $ms, $mns);
}
sub settimes {
  my ($p, $as, $ans, $ms, $mns) = @_;
  return syscall($nr_utimensat, -100, $p, pack('q4', $as, $ans, $ms, $mns), 0) == 0 if $nr_utimensat;
  return utime($as + $ans / 1e9, $ms + $mns / 1e9, $p);
}
while (my $line = <STDIN>) {
  chomp $line;
  my ($how, $as, $ans, $ms, $mns, $p) = split / /, $line, 6;
  next unless defined $p && length $p;
  my @t = $how eq 'f' ? fresh($p) : ();
  @t = ($as, $ans, $ms, $mns) unless @t;
  settimes($p, @t);
}
