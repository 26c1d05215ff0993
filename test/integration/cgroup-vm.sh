#!/bin/sh
# Run inside ../shared/vm/cgroup2-vm as uid 1000 (see vm.test.ts): one boot,
# many checks of the cgroup v2 limits. Each check prints "NAME VALUE..." and
# the test reads the lines. $1: the directory holding bunker and rootfs.
B=$1/bunker
R=$1/rootfs
cd /tmp || exit 1
cg() { $B inspect --json "$1" | sed -n 's/.*"Cgroup": "\([^"]*\)".*/\1/p'; }
field() { sed -n "s/^$1 //p" "$2"; }

# a memory hog is OOM-killed: 137, and inspect says so
$B run --network none --memory 32m --memory-swap 32m "$R" sh -c 'x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done'
echo "oom-exit $?"
id=$($B run -d --network none --memory 32m --memory-swap 32m "$R" sh -c 'x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done')
echo "oom-wait $($B wait "$id")"
echo "oom-inspect $($B inspect --json "$id" | grep -c '"OOMKilled": true')"
$B rm "$id" >/dev/null

# a fork bomb stops at the pids limit, and the guest stays healthy
id=$($B run -d --network none --pids-limit 20 "$R" sh -c 'b() { b & b & wait; }; b 2>/dev/null; sleep 100')
sleep 3
d=$(cg "$id")
echo "pids-current $(cat "$d/pids.current")"
echo "pids-max-events $(field max "$d/pids.events")"
$B rm -f "$id" >/dev/null
echo "healthy $($B run --network none "$R" echo ok)"

# a CPU quota throttles, and usage stays near it
up() { cut -d' ' -f1 /proc/uptime | tr -d .; }
t0=$(up)
id=$($B run -d --network none --cpus 0.25 "$R" sh -c 'while :; do :; done')
sleep 4
d=$(cg "$id")
echo "cpu-throttled $(field nr_throttled "$d/cpu.stat")"
echo "cpu-usage-usec $(field usage_usec "$d/cpu.stat")"
echo "cpu-elapsed-usec $(( ($(up) - t0) * 10000 ))"
# stats: non-zero and plausible
echo "stats $($B stats --no-stream --json "$id")"
# exec joins the container's cgroup
echo "exec-cgroup $($B exec "$id" cat /proc/self/cgroup)"
echo "pid1-cgroup $($B exec "$id" cat /proc/1/cgroup)"
$B rm -f "$id" >/dev/null
echo "cgroup-after-rm $([ -e "$d" ] && echo present || echo gone)"

# pause stops a counter, unpause resumes it; update takes effect
mkdir -p /tmp/cnt
# (written aside and renamed: frozen between truncating and writing, the file would read empty)
id=$($B run -d --network none --memory 256m -v /tmp/cnt:/tmp "$R" sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.05; done')
sleep 1
$B pause "$id" >/dev/null
a=$(cat /tmp/cnt/c); sleep 1; b=$(cat /tmp/cnt/c)
echo "paused-counter $a $b"
echo "paused-ps $($B ps | grep -c paused)"
$B unpause "$id" >/dev/null
sleep 1; c=$(cat /tmp/cnt/c)
echo "resumed-counter $b $c"
d=$(cg "$id")
$B update --memory 64m --pids-limit 50 "$id" >/dev/null
echo "updated $(cat "$d/memory.max") $(cat "$d/pids.max")"
$B rm -f "$id" >/dev/null

# limits travel in a bundle: a container made with them is exported ($2, a
# directory the host reads), and imported into another store it runs with them
export XDG_DATA_HOME=$(mktemp -d)
$B import "$1/rootfs.tar" --name base >/dev/null
$B run --name limited --network none --memory 48m --pids-limit 30 base true
$B export limited -o "$2/limited.bundle" >/dev/null
export XDG_DATA_HOME=$(mktemp -d)
$B import "$2/limited.bundle" >/dev/null
id=$($B run -d --network none limited sleep 100)
d=$(cg "$id")
echo "bundle-limits $(cat "$d/memory.max") $(cat "$d/pids.max")"
$B rm -f "$id" >/dev/null
echo "done"
