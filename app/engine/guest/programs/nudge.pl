# Tells file watchers in the guest (and its containers) what the host changed
# in a shared folder (share/change-notifier.ts). One line per path on stdin:
#   HOW EV ASEC ANSEC MSEC MNSEC PATH
# EV says what happened: c created, m written, a attributes, d deleted,
# F then T the two names of a rename, p a folder whose names changed, t touch.
# With Berth's kernel module loaded (/proc/berth-notify, vm-images/notify)
# c, m, a, d and F+T become the inotify events of their own kind, as if the
# guest had made the change, and p lines are not needed. Without it (or when
# an event cannot be sent) the path is touched with its own times: an
# IN_ATTRIB every watcher sees; HOW `f` asks the file server for the current
# times (past the guest's attribute cache), `h` uses the times on the line.
$| = 1;
my ($nr_statx, $nr_utimensat);
eval { require 'syscall.ph'; $nr_statx = &SYS_statx; $nr_utimensat = &SYS_utimensat; 1 };
my $events;
open($events, '>', '/proc/berth-notify') or undef $events;
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
# One command to the module; false when there is none or it refused (the errno goes to stderr).
sub event {
  my ($cmd) = @_;
  return 0 unless $events;
  return 1 if defined syswrite($events, $cmd);
  print STDERR "berth-notify: $cmd: $!\n";
  return 0;
}
my $from;
while (my $line = <STDIN>) {
  chomp $line;
  my ($how, $ev, $as, $ans, $ms, $mns, $p) = split / /, $line, 7;
  next unless defined $p && length $p;
  if ($ev eq 'F') {
    $from = $p;
    next;
  }
  if ($ev eq 'T') {
    my $old = $from;
    undef $from;
    next if defined $old && event("r $old\0$p");
  } elsif ($ev =~ /^[cmad]$/) {
    next if event("$ev $p");
  } elsif ($ev eq 'p') {
    next if $events;
  } elsif ($ev eq 't') {
    # A flood's folder: the module's IN_ATTRIB, not a touch through the share
    # (a round trip to the file server, and a change the host sees again).
    next if event("a $p");
  } else {
    next;
  }
  next if $ev eq 'd';
  my @t = $how eq 'f' ? fresh($p) : ();
  @t = ($as, $ans, $ms, $mns) unless @t;
  settimes($p, @t);
}
