# The boot timeline: each boot step stamps the guest's own monotonic clock
# (seconds since the kernel started, from /proc/uptime) once, as a line
# "STEP SECONDS" in /run/berth/boot-timeline. The engine reads the file over
# ssh once started and treats it as untrusted (app/engine/guest/boot-timeline.ts).
# Sourced by the initramfs's /init, rc.sysinit, run-sshd and run-dockerd;
# busybox sh and dash (test/unit/guest-stamp.test.ts). Never fails a boot.
# BERTH_TIMELINE and BERTH_UPTIME are for the tests.

# berth_stamp STEP: append "STEP SECONDS", unless STEP is stamped already
# (sshd and dockerd are respawned; their first start counts).
berth_stamp() {
	_bs_file=${BERTH_TIMELINE:-/run/berth/boot-timeline}
	[ -d "${_bs_file%/*}" ] || return 0
	_bs_clock=${BERTH_UPTIME:-/proc/uptime}
	[ -r "$_bs_clock" ] || return 0
	_bs_up=""
	read -r _bs_up _bs_rest <"$_bs_clock"
	[ -n "$_bs_up" ] || return 0
	if [ -f "$_bs_file" ]; then
		while read -r _bs_step _bs_rest; do
			[ "$_bs_step" = "$1" ] && return 0
		done <"$_bs_file"
	fi
	echo "$1 $_bs_up" >>"$_bs_file"
}

# berth_stamp_on STEP PATTERN [STEP PATTERN ...]: copy stdin to stdout line
# by line and stamp STEP at the first line matching the shell pattern
# PATTERN (a daemon's "listening" log line). Once every step is stamped it
# gets out of the way: cat copies the rest.
berth_stamp_on() {
	while [ $# -ge 2 ]; do
		_bs_line="" _bs_eof=""
		IFS= read -r _bs_line || _bs_eof=1
		if [ -z "$_bs_eof" ]; then
			printf '%s\n' "$_bs_line"
		elif [ -n "$_bs_line" ]; then
			# A last line without a newline is passed on (and matched) as it is.
			printf '%s' "$_bs_line"
		else
			return 0
		fi
		_bs_n=$(($# / 2))
		while [ "$_bs_n" -gt 0 ]; do
			_bs_s=$1 _bs_p=$2
			shift 2
			case "$_bs_line" in
			$_bs_p) berth_stamp "$_bs_s" ;;
			*) set -- "$@" "$_bs_s" "$_bs_p" ;;
			esac
			_bs_n=$((_bs_n - 1))
		done
		[ -z "$_bs_eof" ] || return 0
	done
	exec cat
}
