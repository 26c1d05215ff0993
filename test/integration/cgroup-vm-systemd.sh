#!/bin/sh
# Run inside ../shared/vm/cgroup2-vm as root with the host's /usr (see
# vm.test.ts). The guest has no systemd; this script gives uid 1000 what a
# systemd host gives a logged-in user: a real `systemd --user` (the host's
# binary) in user@1000.service/init.scope, and a shell in
# user@1000.service/cmd.scope. Then bunker, as uid 1000, must get its
# cgroups from that manager as transient scopes. Each check prints
# "NAME VALUE..." and the test reads the lines. $1: bunker and rootfs;
# with a command after it, that runs as uid 1000 instead (bench/cgroup).
U=/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service

if [ "$1" != --user ]; then
  as_user() { /usr/bin/setpriv --reuid 1000 --regid 1000 --init-groups env -i PATH="$PATH" HOME=/home/user XDG_RUNTIME_DIR=/run/user/1000 "$@"; }
  mkdir -p /run/systemd/system # what sd_booted() looks for
  mkdir -p $U/init.scope $U/cmd.scope && chown -R 1000:1000 $U/init.scope $U/cmd.scope
  echo $$ > $U/cmd.scope/cgroup.procs
  sh -c "echo \$\$ > $U/init.scope/cgroup.procs; exec /usr/bin/setpriv --reuid 1000 --regid 1000 --init-groups env -i HOME=/home/user XDG_RUNTIME_DIR=/run/user/1000 /usr/lib/systemd/systemd --user" >/tmp/systemd.log 2>&1 &
  echo $! >/tmp/systemd.pid
  i=0
  while [ ! -S /run/user/1000/systemd/private ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  echo "manager $([ -S /run/user/1000/systemd/private ] && echo up || { echo down; tail -5 /tmp/systemd.log >&2; })"
  d=$1
  shift
  [ $# -gt 0 ] && { as_user "$@"; exit $?; }
  as_user sh "$0" --user "$d"
  exit $?
fi

B=$2/bunker
R=$2/rootfs
cd /tmp || exit 1
cg() { $B inspect --json "$1" | sed -n 's/.*"Cgroup": "\([^"]*\)".*/\1/p'; }
gone() { # systemd collects an empty scope soon after, not at once
  i=0
  while [ -e "$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  [ -e "$1" ] && echo present || echo gone
}

# a foreground run with a limit: its own scope, the limit seen inside, the scope gone after
echo "fg $($B run --network none --memory 64m "$R" sh -c 'cat /sys/fs/cgroup/memory.max /proc/self/cgroup' | tr '\n' ' ')"
echo "fg-scopes-left $(ls -d $U/app.slice/bunker-* 2>/dev/null | wc -l)"

# a detached container: SCOPE/container holds it, SCOPE/supervisor the stage
id=$($B run -d --network none --pids-limit 30 "$R" sleep 100)
d=$(cg "$id")
echo "cgroup ${d#/sys/fs/cgroup}"
echo "pids-max $(cat "$d/pids.max")"
stage=$($B inspect --json "$id" | sed -n 's/.*"Pid": \([0-9]*\).*/\1/p')
echo "container-procs $(wc -l < "$d/cgroup.procs")"
echo "supervisor-procs $(wc -l < "${d%/container}/supervisor/cgroup.procs")"
echo "exec-cgroup $($B exec "$id" cat /proc/self/cgroup)"
$B pause "$id" >/dev/null
echo "frozen $(sed -n 's/^frozen //p' "$d/cgroup.events") $($B ps | grep -c paused)"
$B unpause "$id" >/dev/null
echo "stats $($B stats --no-stream --json "$id")"
$B update --pids-limit 40 "$id" >/dev/null
echo "updated $(cat "$d/pids.max")"
# restarted: a new scope, the old one gone
$B restart -t 1 "$id" >/dev/null
d2=$(cg "$id")
echo "restarted $([ "$d2" != "$d" ] && [ -d "$d2" ] && echo new-scope) $(gone "${d%/container}") $(cat "$d2/pids.max")"
d=$d2
$B rm -f "$id" >/dev/null
echo "scope-after-rm $(gone "${d%/container}")"

# the OOM killer, seen although the scope goes with the container
id=$($B run -d --network none --memory 32m --memory-swap 32m "$R" sh -c 'x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done')
d=$(cg "$id")
echo "oom-wait $($B wait "$id")"
echo "oom-scope $(gone "${d%/container}")"
echo "oom-inspect $($B inspect --json "$id" | grep -c '"OOMKilled": true')"
$B rm "$id" >/dev/null

# BUNKER_CGROUP_MANAGER=cgroupfs: bunker/ID in the delegated cgroup, as without systemd
id=$(BUNKER_CGROUP_MANAGER=cgroupfs $B run -d --network none --memory 64m "$R" sleep 100)
echo "cgroupfs $(cg "$id" | sed "s#^$U/##;s#$id#ID#")"
$B rm -f "$id" >/dev/null
# systemd asked for where no manager answers: a limit fails with the reason, a plain run works
XDG_RUNTIME_DIR=/tmp BUNKER_CGROUP_MANAGER=systemd $B run --network none --memory 64m "$R" true 2>/tmp/err
echo "no-manager $? $(cat /tmp/err)"
echo "no-manager-plain $(XDG_RUNTIME_DIR=/tmp BUNKER_CGROUP_MANAGER=systemd $B run --network none "$R" echo ok)"
echo "units-left $(ls -d $U/app.slice/bunker-* 2>/dev/null | wc -l)"

# the manager gone (its socket left behind): a notice, and bunker/ID in the delegated cgroup instead
kill -9 "$(cat /tmp/systemd.pid)"
id=$($B run -d --network none --memory 64m "$R" sleep 100 2>/tmp/err)
echo "fallback $(cg "$id" | sed "s#^$U/##;s#$id#ID#") $(grep -c 'cannot start the systemd scope.*instead' /tmp/err)"
$B rm -f "$id" >/dev/null
