/*
 * bunker-stage: the C half of bunker. It interprets a flat plan compiled by
 * the TypeScript side (src/linux/plan.ts) and holds no policy of its own:
 * every path, flag, id map, capability set and message comes from the plan.
 *
 * bunker (Bun) writes the plan into a memfd and fexecve()s this program from
 * a sealed memfd, so the multithreaded Bun process is gone before any
 * namespace is created (DESIGN.md §1), and no container process can reach
 * the Bun executable (§3).
 *
 *   bunker-stage PLAN_FD
 *
 * The plan is a list of ops. Codes below OP_CHILD_BASE run in this process
 * (the parent); the rest run in the child created by OP_CLONE, in order.
 * A failing child op reports (op index, errno) over a socket; the parent
 * prints the op's description from the plan and exits 125, or with the
 * codes the exec op names when the command cannot be run.
 *
 * It is built freestanding on ffi/nolibc.h, so it stays about 30 KB.
 */
#include "nolibc.h"

/* ---- plan format (kept in step with src/linux/plan.ts) ---------------- */
#define PLAN_MAGIC 0x314b4e42u /* "BNK1" */

enum {
  /* parent ops */
  OP_CLONE = 1,     /* ints: clone flags */
  OP_WRITE = 2,     /* strs: path, data ("{pid}" = child pid in either) */
  OP_SPAWN = 3,     /* strs: argv ("{pid}" substituted); waited for by OP_RELEASE */
  OP_RELEASE = 4,   /* let the child run its ops */
  OP_SUPERVISE = 5, /* ints: SV_* flags, mask of signals to forward; proxy, reap */
  OP_CLEANUP = 6,   /* strs: paths to unlink ("/" suffix: rmdir); runs at exit, also on failure */
  OP_STATUS = 7,    /* strs: a file to write "STATUS TIME" to, and the container's
                       memory.events ("" none): " oom" follows if its OOM killer struck */
  OP_DETACH = 8,    /* strs: log file ("" none); ints: log size cap, keep stdin open.
                       Before OP_CLONE: a session of our own; the child's stdout and
                       stderr become pipes we log; fd 1 hears 'R' once the command runs */
  OP_RECORD = 9,    /* strs: a file to write "PID STARTTIME CHILD CHILD_STARTTIME TIME" to,
                       and a lock file to hold meanwhile ("" none) */
  OP_JOIN = 10,     /* ints: pid, namespace flags; strs: its start time. Join its
                       namespaces (user first: the container's, which its own may be
                       below); the next OP_CLONE's child is inside */
  OP_HELPER = 11,   /* ints: ms to wait, ready fd (-1: none), quiet (stderr to /dev/null); strs: ready file ("": none),
                       argv ("{pid}" substituted). After the id maps: a helper (pasta,
                       slirp4netns, fuse-overlayfs) that lives as long as the container, ready
                       once it has written the ready file, or a byte to the ready fd;
                       F_JOIN_NS, F_READY_MOUNT */
  OP_API = 12,      /* strs: a unix socket, a request: send it, and fail unless the
                       answer holds "return" (slirp4netns's API) */
  OP_REJOIN = 13,   /* join the user namespace the first OP_CLONE made (kept open since):
                       the next OP_CLONE's child has the container's maps, with no
                       newuidmap (run --rm removes the container's files there) */
  OP_CHILD_BASE = 32,
  /* child ops */
  OP_PDEATHSIG = 32, /* ints: signal */
  OP_DUMPABLE,       /* ints: 0|1 */
  OP_SETHOSTNAME,    /* strs: name */
  OP_ROOT,           /* strs: rootfs path on the host; bind it onto itself */
  OP_MOUNT,          /* strs: src, target, fstype, data; ints: flags, create, rdev */
  OP_REMOUNT,        /* strs: target; ints: flags (locked flags are kept) */
  OP_MASK,           /* strs: target; dir -> ro tmpfs, else /dev/null */
  OP_MKDIR,          /* strs: path */
  OP_SYMLINK,        /* strs: link target, path */
  OP_PIVOT,          /* pivot_root into the root of OP_ROOT */
  OP_LOOPBACK,       /* bring lo up */
  OP_CONSOLE,        /* strs: console path ("" none); send pty master to parent */
  OP_SETSID,
  OP_STDIN_NULL,
  OP_CHDIR,          /* strs: dir */
  OP_SETGROUPS,      /* ints: gids */
  OP_SETGID,         /* ints: gid */
  OP_SETUID,         /* ints: uid */
  OP_CAPBSET,        /* ints: bounding set to keep */
  OP_CAPSET,         /* ints: effective, permitted, inheritable, ambient */
  OP_NO_NEW_PRIVS,
  OP_RLIMIT,         /* ints: resource, soft, hard */
  OP_CLOSE_FDS,      /* mark every fd above 2 close-on-exec */
  OP_EXEC,           /* ints: argc, envc, exit code if not found, if not runnable;
                        strs: PATH, argv..., envp...; F_INIT */
  OP_UMASK,          /* ints: mask */
  OP_KEEPCAPS,       /* keep permitted capabilities across the next setuid */
  OP_UNPACK,         /* strs: a directory on the host; apply the records on stdin (unpack.c) */
  OP_RMTREE,         /* strs: paths on the host to remove with all they hold (unpack.c) */
  OP_PACK,           /* strs: a directory; ints: 1 if it is a running container's, 1 to read the mount there
                        alone (open_tree); write its entries as records to stdout (unpack.c) */
  OP_UNSHARE,        /* ints: namespace flags (a cgroup namespace, once in the container's cgroup) */
  OP_MERGE,          /* strs: a directory, then layers bottom first: copy each over it as
                        overlayfs would show them (unpack.c), where overlayfs cannot be had */
  OP_AWAIT,          /* wait for the parent's second go (OP_RELEASE again): its network
                        helper is ready, started while this child set up its root */
  OP_END
};

/* op flags */
#define F_OPTIONAL 0x1       /* ignore any failure */
#define F_IGNORE_ENOENT 0x2  /* skip the op when a path it resolves in the root is missing */
#define F_SRC_IN_ROOT 0x4    /* mount source resolves inside the root */
#define F_HOST_TARGET 0x8    /* mount target is a host path, not in the root */
#define F_RECURSIVE_RO 0x10  /* make a recursive bind read-only all the way down */
#define F_INIT 0x20          /* exec: stay behind as an init that reaps and forwards */
#define F_JOIN_NS 0x40       /* helper: run in the child's user and mount namespaces (not its pid namespace) */
#define F_READY_MOUNT 0x80   /* helper: ready once the child's mount table has its ready path as a
                                mount point (a FUSE mount cannot be looked at from outside its namespace) */
#define F_ROOT_FS 0x100      /* mount: only on a directory of the root's own file system (never
                                /proc, /sys, /dev or another mount's, a symlink in the image notwithstanding) */
#define F_GONE_QUIET 0x200   /* join: a process gone (ESRCH) ends the plan at once, quietly, with STAGE_UNREAD */
#define STAGE_UNREAD 3       /* a running container was not read in place, and nothing was written: read its layers */

/* OP_SUPERVISE flags */
#define SV_TTY 0x1   /* the child sends a pty master: proxy it */
#define SV_STDIN 0x2 /* forward our stdin to the pty, in raw mode */
#define SV_AFTER 0x4 /* a later child (tidying up): its status does not replace the container's */

/* mount target creation */
enum { CREATE_NONE = 0, CREATE_DIR = 1, CREATE_FILE = 2 };

/* messages on the sync socket */
enum { MSG_ERROR = 'E', MSG_MASTER = 'M' };
struct msg {
  int32_t type, index, err;
};

struct op {
  uint16_t code, flags, nint, nstr;
  int64_t *ints;
  char **strs; /* NULL-terminated */
  const char *desc;
};

#define WIFEXITED(s) (((s) & 0x7f) == 0)
#define WEXITSTATUS(s) (((s) >> 8) & 0xff)
#define WTERMSIG(s) ((s) & 0x7f)
#define WIFSIGNALED(s) (((signed char)(((s) & 0x7f) + 1) >> 1) > 0)

static struct op *ops;
static uint32_t nops;
static int sock = -1;   /* sync socket; parent and child each hold one end */
static int rootfd = -1; /* the container root while the child runs ops */
static int target_missing; /* the current op's target does not exist (for F_IGNORE_ENOENT) */
static pid_t child = -1;
static int userns = -1; /* the first child's user namespace, for OP_REJOIN */
static int abandoned;   /* the child died while a helper started: skip the helpers and their API */
static pid_t spawned[8];
static uint32_t spawned_op[8];
static int nspawned;
static pid_t helpers[4];
static uint32_t helper_op[4]; /* the op that started it */
static int helper_log[4];     /* its stderr (a memfd), for the reason it died; -1: none (quiet, or detached) */
static int helper_mounts[4];  /* it serves the container's root (fuse-overlayfs): the container cannot outlive it */
static long helper_said[4];   /* how much of its log has gone to our stderr */
static int nhelpers;
static ksigset_t fwdset; /* signals the parent forwards (from the plan), plus SIGCHLD */
static int errfd = 2;    /* where the stage's own messages go */
/* detached (OP_DETACH): */
static int readyfd = -1;        /* hears 'R' once the command runs, then closes */
static int detached;            /* OP_DETACH ran: output goes to the log */
static int outr = -1, errr = -1; /* read ends of the container's stdout and stderr, until supervise() takes them */
static int stdin_keep = -1;     /* write end of the container's stdin, held open (-i) */
static int logfd = -1;
static const char *logpath;
static long logcap, logsize;

static __attribute__((noreturn)) void die_plan(const char *why) {
  char m[256];
  struct buf b = BUF(m);
  puts_(&b, "bunker: internal error: bad plan: ");
  puts_(&b, why);
  emit(errfd, &b);
  _exit(125);
}

/* ---- plan parsing ------------------------------------------------------ */
/* The fewest ints and strings each op reads; every op is checked before any runs. */
static const struct { uint8_t ints, strs; } ARITY[OP_END] = {
  [OP_CLONE] = { 1, 0 }, [OP_WRITE] = { 0, 2 }, [OP_SPAWN] = { 0, 1 }, [OP_RELEASE] = { 0, 0 },
  [OP_SUPERVISE] = { 2, 0 }, [OP_CLEANUP] = { 0, 0 }, [OP_STATUS] = { 0, 1 }, [OP_DETACH] = { 2, 1 },
  [OP_RECORD] = { 0, 2 }, [OP_JOIN] = { 2, 1 }, [OP_HELPER] = { 3, 2 }, [OP_API] = { 0, 2 }, [OP_REJOIN] = { 0, 0 }, [OP_PDEATHSIG] = { 1, 0 }, [OP_DUMPABLE] = { 1, 0 },
  [OP_SETHOSTNAME] = { 0, 1 }, [OP_ROOT] = { 0, 1 }, [OP_MOUNT] = { 3, 4 }, [OP_REMOUNT] = { 1, 1 },
  [OP_MASK] = { 0, 1 }, [OP_MKDIR] = { 0, 1 }, [OP_SYMLINK] = { 0, 2 }, [OP_PIVOT] = { 0, 0 },
  [OP_LOOPBACK] = { 0, 0 }, [OP_CONSOLE] = { 0, 1 }, [OP_SETSID] = { 0, 0 }, [OP_STDIN_NULL] = { 0, 0 },
  [OP_CHDIR] = { 0, 1 }, [OP_SETGROUPS] = { 0, 0 }, [OP_SETGID] = { 1, 0 }, [OP_SETUID] = { 1, 0 },
  [OP_CAPBSET] = { 1, 0 }, [OP_CAPSET] = { 4, 0 }, [OP_NO_NEW_PRIVS] = { 0, 0 }, [OP_RLIMIT] = { 3, 0 },
  [OP_CLOSE_FDS] = { 0, 0 }, [OP_EXEC] = { 4, 2 }, [OP_UMASK] = { 1, 0 }, [OP_KEEPCAPS] = { 0, 0 },
  [OP_UNPACK] = { 0, 1 }, [OP_RMTREE] = { 0, 1 }, [OP_PACK] = { 2, 1 }, [OP_UNSHARE] = { 1, 0 }, [OP_MERGE] = { 0, 2 }, [OP_AWAIT] = { 0, 0 },
};
static const int VALID[OP_END] = {
  [OP_CLONE ... OP_REJOIN] = 1,
  [OP_PDEATHSIG ... OP_AWAIT] = 1,
};
#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

static __attribute__((noreturn)) void die_plan(const char *why);
static void check_op(const struct op *o) {
  if (o->code >= OP_END || !VALID[o->code]) die_plan("unknown op");
  if (o->nint < ARITY[o->code].ints || o->nstr < ARITY[o->code].strs) die_plan("too few arguments");
  if (o->code == OP_CLONE && ((uint64_t)o->ints[0] & ~(uint64_t)NS_FLAGS)) die_plan("clone flags");
  if (o->code == OP_EXEC) { /* argc >= 1, envc >= 0, and PATH + argv + envp are all the strings */
    int64_t argc = o->ints[0], envc = o->ints[1];
    if (argc < 1 || envc < 0 || argc > o->nstr || 1 + argc + envc != o->nstr) die_plan("exec counts");
  }
}

static void parse_plan(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) die_plan("fstat");
  size_t len = (size_t)st.st_size, off = 0;
  char *buf = xalloc(len + 1);
  while (off < len) {
    ssize_t n = pread(fd, buf + off, len - off, (long)off);
    if (n <= 0) die_plan("short read");
    off += (size_t)n;
  }
  close(fd);
  off = 0;
#define NEED(n) do { if (len - off < (size_t)(n)) die_plan("truncated"); } while (0)
  uint32_t hdr[3];
  NEED(sizeof hdr);
  memcpy(hdr, buf, sizeof hdr);
  off += sizeof hdr;
  if (hdr[0] != PLAN_MAGIC) die_plan("magic");
  nops = hdr[1];
  if (nops > len / 8) die_plan("op count");
  ops = xalloc((nops + 1) * sizeof *ops);
  for (uint32_t i = 0; i < nops; i++) {
    struct op *o = &ops[i];
    uint16_t h[4];
    NEED(sizeof h);
    memcpy(h, buf + off, sizeof h);
    off += sizeof h;
    o->code = h[0], o->flags = h[1], o->nint = h[2], o->nstr = h[3];
    NEED((size_t)o->nint * 8);
    o->ints = xalloc(((size_t)o->nint + 1) * 8);
    memcpy(o->ints, buf + off, (size_t)o->nint * 8);
    off += (size_t)o->nint * 8;
    o->strs = xalloc(((size_t)o->nstr + 1) * sizeof *o->strs);
    for (uint32_t s = 0; s <= o->nstr; s++) { /* the last string is desc */
      uint32_t sl;
      NEED(4);
      memcpy(&sl, buf + off, 4);
      off += 4;
      NEED((size_t)sl + 1);
      if (buf[off + sl] != 0) die_plan("string not terminated");
      if (s < o->nstr) o->strs[s] = buf + off;
      else o->desc = buf + off;
      off += (size_t)sl + 1;
    }
  }
  if (off != len) die_plan("trailing bytes");
  for (uint32_t i = 0; i < nops; i++) check_op(&ops[i]);
#undef NEED
}

/* ---- small helpers ----------------------------------------------------- */
static int keep_errno(int rc, int fd) {
  int saved = errno;
  if (fd >= 0) close(fd);
  errno = saved;
  return rc;
}

/* s with "{pid}" replaced by the child's pid, in memory that stays valid. */
static char *subst_pid(const char *s) {
  const char *m = strstr(s, "{pid}");
  if (!m) return (char *)s;
  size_t cap = strlen(s) + 24;
  struct buf b = { xalloc(cap), cap, 0, 0 };
  put(&b, s, (size_t)(m - s));
  putnum(&b, child);
  puts_(&b, m + 5);
  return b.p;
}

/* memory.events says "oom_kill N" with N > 0: read while the cgroup is still there
 * (a systemd scope goes with the stage, and its memory.events with it) */
static int oom_killed(const char *events) {
  char t[1024];
  int fd = open(events, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, t, sizeof t - 1);
  close(fd);
  if (n <= 0) return 0;
  t[n] = 0;
  for (char *l = t; *l;) {
    if (!strncmp_(l, "oom_kill ", 9)) return l[9] >= '1' && l[9] <= '9';
    l = strchrnul(l, '\n');
    if (*l) l++;
  }
  return 0;
}

static const char *fdpath(int fd, char out[32]) {
  struct buf b = { out, 32, 0, 0 };
  puts_(&b, "/proc/self/fd/");
  putnum(&b, fd);
  return out;
}

static int open_in_root(const char *path, int extra) {
  struct open_how how = { (uint64_t)(O_PATH | O_CLOEXEC | extra), 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  return openat2(rootfd, path, &how);
}

/*
 * Open PATH inside the container root without ever leaving it: symlinks,
 * ".." and absolute links all resolve against the root (openat2
 * RESOLVE_IN_ROOT). With create, missing components are made as
 * directories (the last one as a file for CREATE_FILE); a dangling symlink
 * is followed, still inside the root, and its target created.
 */
static int resolve_in_root(const char *path, int create) {
  char cur[PATH_MAX];
  struct buf c = BUF(cur);
  puts_(&c, path);
  if (overflowed(&c)) { errno = ENAMETOOLONG; return -1; }
  /* each round follows one dangling link (at most 40, as the kernel allows)
   * or creates one component (at most one per component of the path) */
  for (int links = 0, made = 0; links <= 40 && made <= PATH_MAX / 2;) {
    int fd = open_in_root(cur, 0);
    if (fd >= 0 || errno != ENOENT || create == CREATE_NONE) return fd;
    /* walk the components of cur to the first one that is missing */
    char pre[PATH_MAX];
    size_t plen = 0;
    const char *p = cur;
    int progressed = 0;
    while (*p) {
      while (*p == '/') p++;
      if (!*p) break;
      const char *e = strchrnul(p, '/');
      size_t parent_len = plen, n = (size_t)(e - p);
      if (plen + 1 + n >= sizeof pre || n > NAME_MAX) { errno = ENAMETOOLONG; return -1; }
      pre[plen++] = '/';
      memcpy(pre + plen, p, n);
      plen += n;
      pre[plen] = 0;
      int f = open_in_root(pre, O_NOFOLLOW);
      if (f >= 0) {
        struct stat st;
        if (fstat(f, &st) == 0 && S_ISLNK(st.st_mode)) {
          /* a dangling link: continue from its target, inside the root */
          char link[PATH_MAX], next[PATH_MAX];
          ssize_t ln = readlinkat(f, "", link, sizeof link - 1);
          close(f);
          if (ln < 0) return -1;
          link[ln] = 0;
          pre[parent_len] = 0;
          struct buf nb = BUF(next);
          if (link[0] != '/') puts_(&nb, pre), puts_(&nb, "/");
          puts_(&nb, link);
          puts_(&nb, e);
          if (overflowed(&nb)) { errno = ENAMETOOLONG; return -1; }
          memcpy(cur, next, nb.len + 1);
          progressed = 1, links++;
          break;
        }
        close(f);
        p = e;
        continue;
      }
      if (errno != ENOENT) return -1;
      /* pre is missing: create it in its parent, which exists */
      char name[NAME_MAX + 1];
      memcpy(name, p, n);
      name[n] = 0;
      pre[parent_len] = 0;
      int dir = open_in_root(parent_len ? pre : "/", O_DIRECTORY);
      if (dir < 0) return -1;
      int r;
      if (create == CREATE_FILE && !*e) {
        r = openat(dir, name, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0644);
        if (r >= 0) close(r);
      } else {
        r = mkdirat(dir, name, 0755);
      }
      if (keep_errno(r, dir) < 0 && errno != EEXIST) return -1;
      progressed = 1, made++;
      break;
    }
    if (!progressed) { errno = ENOENT; return -1; }
  }
  errno = ELOOP;
  return -1;
}

/* Flags a mount in a user namespace must keep on remount (MNT_LOCK_*),
 * from statfs's f_flags (ST_*: the same bits as MS_* but for relatime). */
#define ST_RELATIME_ 0x1000
#define KEEP_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME)
static unsigned long locked_flags(const char *path) {
  struct statfs sf;
  if (statfs(path, &sf) < 0) return 0;
  unsigned long f = (unsigned long)sf.f_flags;
  return (f & (KEEP_FLAGS & ~(unsigned long)MS_RELATIME)) | ((f & ST_RELATIME_) ? MS_RELATIME : 0);
}

#define BIND_EXTRA (KEEP_FLAGS | MS_STRICTATIME)

static int remount(const char *target, unsigned long flags) {
  return mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags | locked_flags(target), NULL);
}

static int recursive_ro(const char *target) {
  struct mount_attr attr = { MOUNT_ATTR_RDONLY, 0, 0, 0 };
  return mount_setattr(AT_FDCWD, target, AT_RECURSIVE, &attr);
}

static int do_mount(const struct op *o) {
  const char *src = o->strs[0], *target = o->strs[1], *type = o->strs[2], *data = o->strs[3];
  unsigned long flags = (unsigned long)o->ints[0];
  int create = (int)o->ints[1];
  int64_t rdev = o->ints[2];
  char tbuf[32], sbuf[32];
  int tfd = -1, sfd = -1, rc = -1;

  if (*src && ((o->flags & F_SRC_IN_ROOT) || rdev >= 0)) {
    sfd = (o->flags & F_SRC_IN_ROOT) ? resolve_in_root(src, CREATE_NONE) : open(src, O_PATH | O_CLOEXEC);
    if (sfd < 0) {
      target_missing = (o->flags & F_SRC_IN_ROOT) && errno == ENOENT;
      goto out;
    }
    if (rdev >= 0) { /* only the real character device may be bound */
      struct stat st;
      if (fstat(sfd, &st) < 0) goto out;
      if (!S_ISCHR(st.st_mode) || st.st_rdev != (unsigned long)rdev) { errno = ENODEV; goto out; }
    }
    src = fdpath(sfd, sbuf);
  }
  if (!(o->flags & F_HOST_TARGET)) {
    tfd = resolve_in_root(target, create);
    if (tfd < 0) {
      target_missing = errno == ENOENT;
      goto out;
    }
    if (o->flags & F_ROOT_FS) {
      struct stat rs, ts;
      if (fstat(rootfd, &rs) < 0 || fstat(tfd, &ts) < 0) goto out;
      if (rs.st_dev != ts.st_dev || !S_ISDIR(ts.st_mode)) { errno = EXDEV; goto out; }
    }
    target = fdpath(tfd, tbuf);
  }
  if (flags & MS_BIND) {
    if (mount(src, target, NULL, MS_BIND | (flags & MS_REC), NULL) < 0) goto out;
    if (tfd >= 0) { /* re-open: the magic link must now name the new mount */
      close(tfd);
      tfd = resolve_in_root(o->strs[1], CREATE_NONE);
      if (tfd < 0) goto out;
      target = fdpath(tfd, tbuf);
    }
    if ((flags & BIND_EXTRA) && remount(target, flags & BIND_EXTRA) < 0) goto out;
    if ((o->flags & F_RECURSIVE_RO) && recursive_ro(target) < 0) goto out;
  } else if (mount(*src ? src : NULL, target, *type ? type : NULL, flags, *data ? data : NULL) < 0) {
    goto out;
  }
  rc = 0;
out:
  if (sfd >= 0) keep_errno(0, sfd);
  return keep_errno(rc, tfd);
}

static int do_mask(const struct op *o) {
  char buf[32];
  int fd = resolve_in_root(o->strs[0], CREATE_NONE);
  if (fd < 0) {
    target_missing = errno == ENOENT;
    return -1;
  }
  struct stat st;
  int rc = fstat(fd, &st);
  if (rc == 0 && S_ISDIR(st.st_mode))
    rc = mount("tmpfs", fdpath(fd, buf), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k,nr_inodes=1");
  else if (rc == 0)
    rc = mount("/dev/null", fdpath(fd, buf), NULL, MS_BIND, NULL);
  return keep_errno(rc, fd);
}

static int do_symlink(const struct op *o) {
  const char *path = o->strs[1], *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  char parent[PATH_MAX];
  size_t n = slash ? (size_t)(slash - path) : 0;
  if (!*name || n >= sizeof parent) { errno = EINVAL; return -1; }
  memcpy(parent, path, n);
  parent[n] = 0;
  int dir = resolve_in_root(n ? parent : "/", CREATE_DIR);
  if (dir < 0) return -1;
  int rc = symlinkat(o->strs[0], dir, name);
  if (rc < 0 && errno == EEXIST) rc = 0;
  return keep_errno(rc, dir);
}

static int do_pivot(void) {
  if (fchdir(rootfd) < 0 || pivot_root(".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) return -1;
  close(rootfd);
  rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  return rootfd < 0 ? -1 : 0;
}

static int do_loopback(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct ifreq_ ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.name, "lo", 3);
  int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.flags |= IFF_UP | IFF_RUNNING;
    rc = ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  return keep_errno(rc, s);
}

static int send_fd(int fd) {
  struct msg m = { MSG_MASTER, 0, 0 };
  struct iovec iov = { &m, sizeof m };
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
  memset(&u, 0, sizeof u);
  struct msghdr mh = { NULL, 0, &iov, 1, u.buf, sizeof u.buf, 0 };
  u.h.cmsg_level = SOL_SOCKET, u.h.cmsg_type = SCM_RIGHTS, u.h.cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(&u.h), &fd, sizeof fd);
  return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Make a pty in the container's devpts, hand the master to the parent and
 * make the slave our controlling terminal and stdio. */
static int do_console(const char *console) {
  struct open_how how = { O_RDWR | O_NOCTTY | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  int master = openat2(rootfd, "/dev/pts/ptmx", &how);
  if (master < 0) return -1;
  int unlock = 0, slave = -1;
  if (ioctl(master, TIOCSPTLCK, &unlock) < 0 ||
      (slave = ioctl(master, TIOCGPTPEER, (void *)(long)(O_RDWR | O_NOCTTY))) < 0)
    return keep_errno(-1, master);
  if (*console) {
    char tbuf[32], sbuf[32];
    int fd = resolve_in_root(console, CREATE_FILE);
    if (fd < 0 || keep_errno(mount(fdpath(slave, sbuf), fdpath(fd, tbuf), NULL, MS_BIND, NULL), fd) < 0) return -1;
  }
  if (send_fd(master) < 0) return -1;
  close(master);
  char ack;
  if (read(sock, &ack, 1) != 1) { errno = EPIPE; return -1; } /* the parent has set the size */
  if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0) return -1;
  for (int i = 0; i < 3; i++)
    if (dup2(slave, i) < 0) return -1;
  if (slave > 2) close(slave);
  return 0;
}

static int do_chdir(const char *dir) {
  int fd = resolve_in_root(dir, CREATE_NONE);
  if (fd < 0) return -1;
  if (keep_errno(fchdir(fd), fd) < 0) return -1;
  char cwd[PATH_MAX]; /* refuse a working directory outside the root */
  if (!getcwd(cwd, sizeof cwd) || cwd[0] != '/') { errno = EACCES; return -1; }
  return 0;
}

static int do_capset(const int64_t *v) {
  struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct d[2];
  for (int i = 0; i < 2; i++) {
    d[i].effective = (uint32_t)((uint64_t)v[0] >> (32 * i));
    d[i].permitted = (uint32_t)((uint64_t)v[1] >> (32 * i));
    d[i].inheritable = (uint32_t)((uint64_t)v[2] >> (32 * i));
  }
  if (capset(&h, d) < 0) return -1;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
  for (int c = 0; c < 64; c++)
    if (((uint64_t)v[3] >> c) & 1)
      if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)c, 0, 0) < 0) return -1;
  return 0;
}

static int do_capbset(uint64_t keep) {
  for (int c = 0; c < 64; c++) {
    if ((keep >> c) & 1) continue;
    if (prctl(PR_CAPBSET_DROP, (unsigned long)c, 0, 0, 0) < 0) {
      if (errno == EINVAL) break; /* past the kernel's last capability */
      return -1;
    }
  }
  return 0;
}

/* Close (or with cloexec, mark close-on-exec) every fd from 3 up. */
static int close_from3(int cloexec) {
  if (close_range(3, ~0u, cloexec ? 4 /* CLOSE_RANGE_CLOEXEC */ : 0) == 0) return 0;
  struct rlimit rl; /* kernels before 5.9 (5.11 for cloexec): one at a time */
  if (prlimit(0, RLIMIT_NOFILE, NULL, &rl) < 0) return -1;
  for (unsigned long fd = 3; fd < rl.rlim_cur; fd++)
    if (cloexec) fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    else close((int)fd);
  return 0;
}

static void report(uint32_t index, int err) {
  struct msg m = { MSG_ERROR, (int32_t)index, err };
  send(sock, &m, sizeof m, MSG_NOSIGNAL);
}

static void reset_signals(void) {
  ksigset_t none = 0;
  for (int s = 1; s <= NSIG_; s++) sigdisposition(s, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* execve argv[0], searching PATH when it has no slash, as execvp does. */
static void exec_search(const char *path, char **argv, char **envp) {
  const char *cmd = argv[0];
  if (!*cmd) { errno = ENOENT; return; }
  if (strchr(cmd, '/')) { execve(cmd, argv, envp); return; }
  int err = ENOENT;
  for (const char *p = path;; p++) {
    const char *e = strchrnul(p, ':');
    char full[PATH_MAX];
    struct buf b = BUF(full);
    put(&b, p, (size_t)(e - p));
    if (e != p) puts_(&b, "/");
    puts_(&b, cmd);
    if (!overflowed(&b)) {
      execve(full, argv, envp);
      if (errno == EACCES) err = EACCES;
      else if (errno != ENOENT && errno != ENOTDIR) err = errno;
    }
    if (!*e) break;
    p = e;
  }
  errno = err;
}

/* PID 1 with --init: forward signals to the command, reap every zombie,
 * exit with the command's status. */
static __attribute__((noreturn)) void init_loop(pid_t cmd) {
  prctl(PR_SET_NAME, (unsigned long)"bunker-init", 0, 0, 0);
  ksigset_t all = ~0UL;
  int sfd = signalfd(&all, SFD_CLOEXEC);
  if (sfd < 0) _exit(125);
  for (;;) {
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof si) != sizeof si) continue;
    if (si.ssi_signo != SIGCHLD) {
      kill(cmd, (int)si.ssi_signo);
      continue;
    }
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0)
      if (p == cmd) _exit(WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st));
  }
}

/* The exit status for a command that could not be run: the plan's codes. */
static int exec_status(const struct op *o, int err) {
  return (int)(err == ENOENT ? o->ints[2] : o->ints[3]);
}

static int do_exec(uint32_t index, const struct op *o) {
  int argc = (int)o->ints[0]; /* counts checked by check_op */
  char **argv = xalloc(((size_t)argc + 1) * sizeof *argv), **envp = o->strs + 1 + argc;
  memcpy(argv, o->strs + 1, (size_t)argc * sizeof *argv); /* envp is already NULL-ended */
  if (o->flags & F_INIT) {
    ksigset_t all = ~0UL;
    sigprocmask(SIG_SETMASK, &all, NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid > 0) {
      close(sock);
      init_loop(pid);
    }
    setpgid(0, 0);
    if (isatty(0)) { /* the command gets the terminal; SIGTTOU is blocked here */
      pid_t me = getpid();
      ioctl(0, TIOCSPGRP, &me);
    }
  }
  reset_signals();
  exec_search(o->strs[0], argv, envp);
  int err = errno;
  report(index, err);
  _exit(exec_status(o, err));
}

#include "unpack.c"

static int run_child_op(uint32_t i, struct op *o) {
  const int64_t *v = o->ints;
  char buf[32];
  int fd;
  switch (o->code) {
  case OP_PDEATHSIG: {
    /* set again after a uid change, which clears it; then make sure the
     * parent did not die in between (its end of the socket would be closed) */
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)v[0], 0, 0, 0) < 0) return -1;
    struct pollfd p = { sock, 0, 0 };
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR))) _exit(125);
    return 0;
  }
  case OP_KEEPCAPS: return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
  case OP_UNPACK: do_unpack(o->strs[0]);
  case OP_PACK: do_pack(o->strs[0], (int)v[0], (int)v[1]);
  case OP_UNSHARE: return unshare((int)v[0]);
  case OP_AWAIT: {
    char go;
    if (read(sock, &go, 1) != 1) _exit(125); /* the parent failed or is gone */
    return 0;
  }
  case OP_MERGE:
    for (int k = 1; k < o->nstr; k++)
      if (do_merge(o->strs[k], o->strs[0]) < 0) return -1;
    return 0;
  case OP_RMTREE:
    for (int k = 0; k < o->nstr; k++)
      if (do_rmtree(o->strs[k]) < 0) return -1;
    return 0;
  case OP_DUMPABLE: return prctl(PR_SET_DUMPABLE, (unsigned long)v[0], 0, 0, 0);
  case OP_SETHOSTNAME: return sethostname(o->strs[0], strlen(o->strs[0]));
  case OP_ROOT:
    if (mount(o->strs[0], o->strs[0], NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
    rootfd = open(o->strs[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
    return rootfd < 0 ? -1 : 0;
  case OP_MOUNT: return do_mount(o);
  case OP_REMOUNT:
    if ((fd = resolve_in_root(o->strs[0], CREATE_NONE)) < 0) return -1;
    return keep_errno(remount(fdpath(fd, buf), (unsigned long)v[0]), fd);
  case OP_MASK: return do_mask(o);
  case OP_MKDIR:
    if ((fd = resolve_in_root(o->strs[0], CREATE_DIR)) < 0) return -1;
    return keep_errno(0, fd);
  case OP_SYMLINK: return do_symlink(o);
  case OP_PIVOT: return do_pivot();
  case OP_LOOPBACK: return do_loopback();
  case OP_CONSOLE: return do_console(o->strs[0]);
  case OP_SETSID: return setsid() < 0 ? -1 : 0;
  case OP_STDIN_NULL:
    if ((fd = open("/dev/null", O_RDONLY)) < 0) return -1;
    if (fd != 0 && (dup2(fd, 0) < 0 || close(fd) < 0)) return -1;
    return 0;
  case OP_CHDIR: return do_chdir(o->strs[0]);
  case OP_SETGROUPS: {
    gid_t g[64];
    if (o->nint > 64) { errno = E2BIG; return -1; }
    for (int k = 0; k < o->nint; k++) g[k] = (gid_t)v[k];
    return setgroups(o->nint, g);
  }
  case OP_SETGID: return setresgid((gid_t)v[0], (gid_t)v[0], (gid_t)v[0]);
  case OP_SETUID: return setresuid((uid_t)v[0], (uid_t)v[0], (uid_t)v[0]);
  case OP_CAPBSET: return do_capbset((uint64_t)v[0]);
  case OP_CAPSET: return do_capset(v);
  case OP_NO_NEW_PRIVS: return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  case OP_RLIMIT: {
    struct rlimit rl = { (unsigned long)v[1], (unsigned long)v[2] };
    return prlimit(0, (int)v[0], &rl, NULL);
  }
  case OP_CLOSE_FDS: return close_from3(1);
  case OP_EXEC: return do_exec(i, o);
  case OP_UMASK: umask((int)v[0]); return 0;
  }
  errno = ENOSYS;
  return -1;
}

static __attribute__((noreturn)) void child_main(uint32_t start) {
  reset_signals();
  /* what only the supervisor may hold (the fds are close-on-exec, but --init never execs) */
  int mine[] = { errfd == 2 ? -1 : errfd, readyfd, outr, errr, stdin_keep, logfd };
  for (int k = 0; k < 6; k++)
    if (mine[k] >= 0) close(mine[k]);
  char go;
  if (read(sock, &go, 1) != 1) _exit(125); /* the parent failed or is gone */
  for (uint32_t i = start; i < nops; i++) {
    struct op *o = &ops[i];
    if (o->code < OP_CHILD_BASE) continue;
    target_missing = 0;
    if (run_child_op(i, o) == 0) continue;
    if ((o->flags & F_OPTIONAL) || ((o->flags & F_IGNORE_ENOENT) && target_missing)) continue;
    report(i, errno);
    _exit(125);
  }
  _exit(0); /* a plan without OP_EXEC (removing files, say) is done */
}

/* ---- parent ------------------------------------------------------------- */
static int run_ops(uint32_t from);
static int has_op(uint32_t code) {
  for (uint32_t i = 0; i < nops; i++)
    if (ops[i].code == code) return 1;
  return 0;
}

/* Field 22 of /proc/PID/stat (start time in ticks), to tell a reused pid from the one meant. */
/* /proc/PID/WHAT, opened (close-on-exec). */
static int open_proc(pid_t pid, const char *what, int flags) {
  char path[64];
  struct buf p = BUF(path);
  puts_(&p, "/proc/"), putnum(&p, pid), puts_(&p, "/"), puts_(&p, what);
  return open(path, flags | O_CLOEXEC);
}

static int starttime(pid_t pid, struct buf *out) {
  char st[1024];
  int fd = open_proc(pid, "stat", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, st, sizeof st - 1);
  close(fd);
  if (n <= 0) return -1;
  st[n] = 0;
  char *f = strrchr(st, ')');
  if (!f) return -1;
  for (int field = 2; field < 22; field++) { /* ") S ppid ...": field 3 follows ") " */
    f = strchr(f + 1, ' ');
    if (!f) return -1;
  }
  f++;
  put(out, f, (size_t)(strchrnul(f, ' ') - f));
  return 0;
}

/* Write a small file whole or not at all: PATH.tmp, then rename. */
static int write_atomic(const char *path, const struct buf *b) {
  char tmp[PATH_MAX];
  struct buf t = BUF(tmp);
  puts_(&t, path), puts_(&t, ".tmp");
  if (overflowed(&t)) { errno = ENAMETOOLONG; return -1; }
  int fd = openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  write_all(fd, b->p, b->len);
  close(fd);
  return renameat(AT_FDCWD, tmp, AT_FDCWD, path);
}

/* ---- the log of a detached container: CRI's format, as Podman's k8s-file:
 *   2026-11-27T21:44:21.123456789Z stdout F a whole line
 *   2026-11-27T21:44:21.123456789Z stderr P part of a line (no newline)
 * Past logcap bytes the log moves to LOG.1 (replacing it) and starts again. */
struct stream {
  size_t len;
  char buf[8192];
};
static struct stream streams[2]; /* stdout, stderr (zeroed: in .bss, not in the binary) */

static void log_reopen(int truncate) {
  if (logfd >= 0) close(logfd);
  logfd = openat(AT_FDCWD, logpath, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0600);
  struct stat st;
  logsize = logfd >= 0 && fstat(logfd, &st) == 0 ? (long)st.st_size : 0;
}

static void log_flush(struct stream *s, char tag) {
  if (logfd < 0) { s->len = 0; return; }
  char line[sizeof s->buf + 64];
  struct buf b = BUF(line);
  puttime(&b);
  puts_(&b, s == &streams[0] ? " stdout " : " stderr "), put(&b, tag == 'F' ? "F " : "P ", 2);
  put(&b, s->buf, s->len);
  put(&b, "\n", 1);
  s->len = 0;
  if (logsize > 0 && logsize + (long)b.len > logcap) {
    char old[PATH_MAX];
    struct buf o = BUF(old);
    puts_(&o, logpath), puts_(&o, ".1");
    if (!overflowed(&o) && renameat(AT_FDCWD, logpath, AT_FDCWD, old) == 0) log_reopen(1);
  }
  write_all(logfd, b.p, b.len);
  logsize += (long)b.len;
}

static void log_data(struct stream *s, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n') { log_flush(s, 'F'); continue; }
    s->buf[s->len++] = p[i];
    if (s->len == sizeof s->buf) log_flush(s, 'P');
  }
}

static int null_fd(int fd, int flags) {
  int n = open("/dev/null", flags | O_CLOEXEC);
  if (n < 0) return -1;
  int rc = dup2(n, fd);
  close(n);
  return rc < 0 ? -1 : 0;
}

static int do_detach(const struct op *o) {
  int out[2], err[2];
  if (setsid() < 0 && errno != EPERM) return -1; /* EPERM: a session leader already */
  if (chdir("/") < 0) return -1; /* hold no directory of the caller's for the container's life */
  if ((errfd = fcntl(2, F_DUPFD_CLOEXEC, 3)) < 0 || (readyfd = fcntl(1, F_DUPFD_CLOEXEC, 3)) < 0) return -1;
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) return -1;
  if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) return -1;
  close(out[1]), close(err[1]);
  outr = out[0], errr = err[0], detached = 1;
  if (o->ints[1]) { /* -i: stdin stays open, with nothing to read */
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0 || dup2(in[0], 0) < 0) return -1;
    close(in[0]);
    stdin_keep = in[1];
  }
  logpath = o->strs[0], logcap = (long)o->ints[0];
  if (*logpath) {
    log_reopen(0);
    if (logfd < 0) return -1;
  }
  return 0;
}

/* Of the user namespace fd is and those above it, the one whose parent is
 * ours: the container's own, which pid 1 may have left for one of its own
 * (unshare -U), where it would have no say over the rest. (A container
 * started from inside a user namespace of the caller's is joined at that
 * one.) Takes fd. */
static int container_userns(int fd) {
  struct stat ours, st;
  if (fstatat(AT_FDCWD, "/proc/self/ns/user", &ours, 0) < 0) return keep_errno(-1, fd);
  for (;;) {
    int up = ioctl(fd, NS_GET_PARENT, 0);
    if (up < 0 || fstat(up, &st) < 0) return keep_errno(keep_errno(-1, up), fd);
    if (st.st_dev == ours.st_dev && st.st_ino == ours.st_ino) return keep_errno(fd, up);
    close(fd);
    fd = up;
  }
}

/* The pid is still the process started at starttime; else ESRCH. */
static int same_process(pid_t pid, const char *start) {
  char st[24];
  struct buf b = BUF(st);
  if (starttime(pid, &b) == 0 && strcmp(st, start) == 0) return 1;
  errno = ESRCH;
  return 0;
}

/* Join the namespaces of a running container: open them all, check the pid
 * is still the process meant, then enter, user first (it grants the rest). */
static int do_join(const struct op *o) {
  static const struct { const char *name; long flag; } NS[] = {
    { "ns/user", CLONE_NEWUSER }, { "ns/mnt", CLONE_NEWNS }, { "ns/pid", CLONE_NEWPID }, { "ns/ipc", CLONE_NEWIPC },
    { "ns/uts", CLONE_NEWUTS }, { "ns/net", CLONE_NEWNET }, { "ns/cgroup", CLONE_NEWCGROUP },
  };
  pid_t pid = (pid_t)o->ints[0];
  int fds[7], n = 0, rc = -1;
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (!same_process(pid, o->strs[0])) return -1; /* first too: a pid taken by another's process is not ours to open */
  for (int k = 0; k < 7; k++) {
    if (!(o->ints[1] & NS[k].flag)) continue;
    if ((fds[n] = open_proc(pid, NS[k].name, O_RDONLY)) < 0) {
      if (errno == ENOENT) errno = ESRCH;
      goto out;
    }
    n++;
  }
  if (!same_process(pid, o->strs[0])) goto out;
  if ((o->ints[1] & CLONE_NEWUSER) && (fds[0] = container_userns(fds[0])) < 0) goto out; /* the container's, which the pid's may be below */
  for (int k = 0; k < n; k++)
    if (setns(fds[k], 0) < 0) goto out;
  rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  rc = rootfd < 0 || chdir("/") < 0 ? -1 : 0;
out:
  while (n > 0) keep_errno(0, fds[--n]);
  return rc;
}

static struct termios saved_tio;
static int raw_set;

static void restore_tty(void) {
  if (raw_set) tcsetattr_flush(0, &saved_tio);
  raw_set = 0;
}

static void copy_winsize(int master) {
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

/* "bunker: <what failed>: <why>[; <what to do>]" from an op's desc ("what\thint"). */
static void print_error(uint32_t index, int err, int status) {
  char m[1024];
  struct buf b = BUF(m);
  const char *desc = index < nops ? ops[index].desc : "?", *tab = strchr(desc, '\t');
  puts_(&b, "bunker: ");
  put(&b, desc, tab ? (size_t)(tab - desc) : strlen(desc));
  if (status >= 0) {
    puts_(&b, ": exited with status ");
    putnum(&b, status);
  } else if (ops[index].code == OP_EXEC && err == ENOENT && !strchr(ops[index].strs[1], '/')) {
    puts_(&b, ": executable file not found in $PATH");
    tab = NULL;
  } else {
    puts_(&b, ": ");
    puterr(&b, err);
  }
  /* a hint says what the kernel or host may lack or forbid: only where a helper failed, or the error is a refusal
   * (a full disk, or overlayfs's ELOOP at a layer given twice, is said as it is; a clone's
   * ENOSPC and EUSERS are refusals too: too many user namespaces, which its hint names) */
  int refused = status >= 0 || err == EPERM || err == EACCES || err == EINVAL || err == ENOSYS || err == ENODEV || err == EOPNOTSUPP ||
                (ops[index].code == OP_CLONE && (err == ENOSPC || err == EUSERS));
  if (tab && !refused) tab = NULL;
  if (tab) puts_(&b, "; "), puts_(&b, tab + 1);
  emit(errfd, &b);
}

static void cleanup(void) {
  for (uint32_t i = 0; i < nops; i++) {
    if (ops[i].code != OP_CLEANUP) continue;
    for (int s = 0; s < ops[i].nstr; s++) {
      const char *p = ops[i].strs[s];
      size_t n = strlen(p);
      if (n && p[n - 1] == '/') rmdir(p);
      else unlink(p);
    }
  }
}

/* Print what failed (UINT32_MAX: already printed; UINT32_MAX-1: the stage
 * itself), undo, exit 125. */
static __attribute__((noreturn)) void fail(uint32_t index, int err) {
  if (index == UINT32_MAX - 1) {
    char m[128];
    struct buf b = BUF(m);
    puts_(&b, "bunker: the stage failed: ");
    puterr(&b, err);
    emit(errfd, &b);
  } else if (index != UINT32_MAX) {
    print_error(index, err, -1);
  }
  for (int k = 0; k < nspawned; k++) kill(spawned[k], SIGKILL);
  for (int k = 0; k < nhelpers; k++) kill(helpers[k], SIGKILL);
  if (child > 0) {
    kill(child, SIGKILL);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {}
  }
  restore_tty();
  /* run --rm: a container that failed to start goes too, removed as it would have been
   * after its run (once: a failure there only ends it) */
  static int removing;
  uint32_t from = 0;
  while (from < nops && ops[from].code != OP_REJOIN) from++;
  if (userns >= 0 && from < nops && !removing) { /* a failure at REJOIN or after has closed userns */
    removing = 1, nspawned = nhelpers = 0, child = -1;
    run_ops(from);
  }
  cleanup();
  _exit(125);
}

/* Wait for the helpers OP_SPAWN started; on failure name the op and fail. */
static void wait_spawned(void) {
  for (int k = 0; k < nspawned; k++) {
    int st;
    while (waitpid(spawned[k], &st, 0) < 0)
      if (errno != EINTR) fail(spawned_op[k], errno);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
    print_error(spawned_op[k], 0, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    fail(UINT32_MAX, 0);
  }
  nspawned = 0;
}

static void spawn(uint32_t i, const struct op *o) {
  if (nspawned == (int)(sizeof spawned / sizeof *spawned) || o->nstr < 1) fail(i, E2BIG);
  char **av = xalloc(((size_t)o->nstr + 1) * sizeof *av);
  for (int k = 0; k < o->nstr; k++) av[k] = subst_pid(o->strs[k]);
  char *env[] = { NULL };
  pid_t pid = fork();
  if (pid < 0) fail(i, errno);
  if (pid == 0) {
    reset_signals();
    execve(av[0], av, env);
    _exit(127);
  }
  spawned_op[nspawned] = i;
  spawned[nspawned++] = pid;
}

/* A helper ended: its exit status, and the last line it wrote to its log (a memfd) if it kept one. */
static void print_helper_error(uint32_t i, int status, int log) {
  char t[2048], m[2048 + 64];
  ssize_t n = log >= 0 ? pread(log, t, sizeof t - 1, 0) : -1;
  while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == ' ')) n--;
  if (n <= 0) {
    print_error(i, 0, status);
    return;
  }
  t[n] = 0;
  char *last = strrchr(t, '\n');
  struct buf b = BUF(m);
  puts_(&b, "bunker: "), puts_(&b, ops[i].desc), puts_(&b, ": exited with status "), putnum(&b, status);
  puts_(&b, ": "), puts_(&b, last ? last + 1 : t);
  emit(errfd, &b);
}

/* pid's mount table (/proc/PID/mountinfo) has a mount on path (as mountinfo
 * writes it: canonical, with space, tab, newline and backslash escaped): the
 * fifth field of a line. */
static int mounted(pid_t pid, const char *path) {
  static char *t; /* polled every millisecond: one buffer, grown as needed (the arena frees nothing) */
  static size_t cap;
  int fd = open_proc(pid, "mountinfo", O_RDONLY);
  if (fd < 0) return 0;
  if (!t) t = xalloc(cap = 1 << 16);
  size_t len = 0;
  for (ssize_t n; (n = read(fd, t + len, cap - 1 - len)) > 0;) {
    len += (size_t)n;
    if (len == cap - 1) { /* a long table: room for more */
      char *more = xalloc(cap * 2);
      memcpy(more, t, len);
      t = more, cap *= 2;
    }
  }
  close(fd);
  t[len] = 0;
  size_t plen = strlen(path);
  for (char *l = t; *l;) {
    char *f = l;
    for (int k = 0; k < 4 && *f && *f != '\n'; k++) f = strchrnul(f, ' '), f += *f == ' ';
    if (!strncmp_(f, path, plen) && (f[plen] == ' ' || f[plen] == '\n' || !f[plen])) return 1;
    l = strchrnul(l, '\n');
    if (*l) l++;
  }
  return 0;
}

/* The child closed its end of the socket before its exec: it died (after its report, if it made one). */
static int child_gone(void) {
  struct pollfd p = { sock, POLLIN, 0 };
  return poll(&p, 1, 0) > 0 && (p.revents & POLLHUP);
}

/* What helper k wrote to its log since the last time, on our stderr (not a mounting
 * helper's: its log is only for the reason it died). */
static void helper_say(int k) {
  char t[4096];
  if (helper_mounts[k]) return;
  for (ssize_t n; helper_log[k] >= 0 && (n = pread(helper_log[k], t, sizeof t, helper_said[k])) > 0; helper_said[k] += n)
    write_all(errfd, t, (size_t)n);
}

/* A helper that lives as long as the container (pasta): it dies with us
 * (PDEATHSIG) or when the container has exited (stop_helpers), and is ready
 * once it has written its ready file (pasta's --pid file comes after its setup). */
static void helper(uint32_t i, const struct op *o) {
  wait_spawned(); /* the id maps first: it joins the user namespace */
  if (nhelpers == (int)(sizeof helpers / sizeof *helpers)) fail(i, E2BIG);
  char **av = xalloc((size_t)o->nstr * sizeof *av);
  for (int k = 1; k < o->nstr; k++) av[k - 1] = subst_pid(o->strs[k]);
  char *env[] = { NULL };
  int readyfd_no = (int)o->ints[1], rp[2] = { -1, -1 };
  if (readyfd_no >= 0 && pipe2(rp, O_CLOEXEC) < 0) fail(i, errno);
  const char *ready = o->strs[0];
  static char want[3 * PATH_MAX];
  /* its stderr is kept, to say why it failed; a start given up because the container died
   * says nothing of the helper's (pasta: "Couldn't open network namespace") */
  int log = -1;
  if (o->flags & F_READY_MOUNT) { /* the mount point as mountinfo will show it */
    char real[PATH_MAX], fdp[32];
    int fd = open(ready, O_PATH | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : readlinkat(AT_FDCWD, fdpath(fd, fdp), real, sizeof real - 1);
    if (n < 0) fail(i, errno);
    close(fd);
    real[n] = 0;
    struct buf w = BUF(want);
    for (const char *c = real; *c; c++) {
      if (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\\') {
        char e[4] = { '\\', (char)('0' + ((*c >> 6) & 7)), (char)('0' + ((*c >> 3) & 7)), (char)('0' + (*c & 7)) };
        put(&w, e, 4);
      } else put(&w, c, 1);
    }
    ready = want;
  }
  if (((o->flags & F_READY_MOUNT) || !(detached || o->ints[2])) && (log = memfd_create("bunker-helper", 1 /* MFD_CLOEXEC */)) < 0) fail(i, errno);
  int ns[2] = { -1, -1 }; /* the child's user and mount namespaces, opened while it surely lives */
  if (o->flags & F_JOIN_NS) {
    static const char *const which[2] = { "ns/user", "ns/mnt" };
    for (int k = 0; k < 2; k++)
      if ((ns[k] = open_proc(child, which[k], O_RDONLY)) < 0) fail(i, errno);
  }
  pid_t parent = getpid(), pid = fork();
  if (pid < 0) fail(i, errno);
  if (pid == 0) {
    reset_signals();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent) _exit(125);
    setsid(); /* out of the terminal's process group: ^C and hang-ups are the container's, not its */
    /* its chatter stays out of the container's output; detached, fds 1 and 2
     * are the container's log, so its errors go too */
    if (null_fd(0, O_RDONLY) < 0 || null_fd(1, O_WRONLY) < 0) _exit(125); /* the terminal is the container's */
    if (log >= 0 ? dup2(log, 2) < 0 : (detached || o->ints[2]) && null_fd(2, O_WRONLY) < 0) _exit(125);
    if (readyfd_no >= 0 && dup2(rp[1], readyfd_no) < 0) _exit(125);
    /* user first: it gives the capabilities the mount namespace asks for */
    if (ns[0] >= 0 && (setns(ns[0], CLONE_NEWUSER) < 0 || setns(ns[1], CLONE_NEWNS) < 0 || chdir("/") < 0)) {
      char m[64];
      struct buf b = BUF(m);
      puts_(&b, "joining the container's namespaces: "), puterr(&b, errno), put(&b, "\n", 1);
      write(2, m, b.len);
      _exit(125);
    }
    execve(av[0], av, env);
    _exit(127);
  }
  helper_op[nhelpers] = i, helper_log[nhelpers] = log, helper_said[nhelpers] = 0;
  helper_mounts[nhelpers] = (o->flags & F_READY_MOUNT) != 0;
  helpers[nhelpers++] = pid;
  if (rp[1] >= 0) close(rp[1]);
  for (int k = 0; k < 2; k++)
    if (ns[k] >= 0) close(ns[k]);
  for (int64_t waited = 0;; waited++) {
    struct stat st;
    if (child_gone()) { /* it failed setting up (a helper may fail for that, too): supervise() says why */
      kill(pid, SIGKILL);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
      nhelpers--, abandoned = 1;
      if (log >= 0) close(log);
      return;
    }
    if (o->flags & F_READY_MOUNT) {
      if (mounted(child, ready)) break;
    } else if (*ready) {
      int fd = open(ready, O_RDONLY | O_CLOEXEC);
      if (fd >= 0 && keep_errno(fstat(fd, &st), fd) == 0 && st.st_size > 0) break;
    }
    struct pollfd p = { rp[0], POLLIN, 0 };
    if (rp[0] >= 0 && poll(&p, 1, 1) > 0 && p.revents) {
      char c;
      ssize_t r = read(rp[0], &c, 1);
      close(rp[0]);
      if (r == 1) break;
      rp[0] = -1; /* it closed the fd without a word: its exit status will say why */
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      nhelpers--;
      if (child_gone()) { /* it died first, and the helper for that */
        abandoned = 1;
        if (log >= 0) close(log);
        return;
      }
      print_helper_error(i, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), log);
      fail(UINT32_MAX, 0);
    }
    if (waited >= o->ints[0]) fail(i, ETIMEDOUT);
    if (rp[0] < 0) poll(NULL, 0, 1);
  }
  /* ready: what it said while starting (a warning, say) is the user's to see */
  helper_say(nhelpers - 1);
}

/* One request to a helper's API socket (slirp4netns: add_hostfwd). */
static int api(const struct op *o) {
  struct sockaddr_un_ a = { AF_UNIX, { 0 } };
  size_t n = strlen(o->strs[0]);
  if (n >= sizeof a.path) { errno = ENAMETOOLONG; return -1; }
  memcpy(a.path, o->strs[0], n);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  if (connect(s, &a, sizeof a) < 0) return keep_errno(-1, s);
  write_all(s, o->strs[1], strlen(o->strs[1]));
  char reply[512];
  size_t got = 0;
  for (ssize_t r; got < sizeof reply - 1 && (r = read(s, reply + got, sizeof reply - 1 - got)) > 0;) {
    got += (size_t)r;
    reply[got] = 0;
    if (strchr(reply, '}') && strstr(reply, "}}")) break; /* a whole answer */
  }
  close(s);
  reply[got] = 0;
  if (strstr(reply, "\"return\"")) return 0;
  errno = EPROTO;
  return -1;
}

/* SIGTERM, and SIGKILL for a helper still there after two seconds. */
static void stop_helpers(void) {
  for (int k = 0; k < nhelpers; k++)
    if (helpers[k] > 0) kill(helpers[k], SIGTERM);
  for (int k = 0; k < nhelpers; k++) {
    if (helpers[k] <= 0) continue; /* reaped already */
    /* its pidfd turns readable when it ends; kernels before 5.3 have none: look every 10 ms */
    int pfd = pidfd_open(helpers[k], 0), t = 0;
    if (pfd >= 0) {
      struct pollfd p = { pfd, POLLIN, 0 };
      poll(&p, 1, 2000);
      close(pfd);
    } else {
      while (waitpid(helpers[k], NULL, WNOHANG) == 0 && t++ < 200) poll(NULL, 0, 10);
    }
    if (waitpid(helpers[k], NULL, WNOHANG) == 0) {
      kill(helpers[k], SIGKILL);
      while (waitpid(helpers[k], NULL, 0) < 0 && errno == EINTR) {}
    }
  }
  for (int k = 0; k < nhelpers; k++) helper_say(k); /* what it said while the container ran (pasta runs --quiet: errors) */
  nhelpers = 0;
}

/* Receive one message from the child; returns 0 at EOF (the child exec'd or died). */
static int receive(struct msg *m, int *fd) {
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
  struct iovec iov = { m, sizeof *m };
  struct msghdr mh = { NULL, 0, &iov, 1, u.buf, sizeof u.buf, 0 };
  memset(&u, 0, sizeof u);
  *fd = -1;
  ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  if (n <= 0) return 0;
  if (n != sizeof *m) m->type = 0;
  if (mh.msg_controllen >= sizeof u.h && u.h.cmsg_level == SOL_SOCKET && u.h.cmsg_type == SCM_RIGHTS)
    memcpy(fd, CMSG_DATA(&u.h), sizeof *fd);
  return 1;
}

/* The command runs (its exec closed the socket without a report): a detached
 * stage tells the CLI, and has nothing more to say on its stderr. */
static void ready(void) {
  if (readyfd < 0) return;
  write_all(readyfd, "R", 1);
  close(readyfd);
  readyfd = -1;
  null_fd(errfd, O_WRONLY);
}

/* Proxy the pty or log the output, forward signals, and wait for the child.
 * Returns the exit code. */
static int supervise(int flags) {
  int sfd = signalfd(&fwdset, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) fail(UINT32_MAX - 1, errno);
  int master = -1, status = 0, exited = 0, err_index = -1, err = 0, sock_open = 1;
  int in_open = (flags & SV_TTY) && (flags & SV_STDIN);
  char inbuf[4096];
  size_t inlen = 0;
  int pipes[2] = { outr, errr }; /* closed here: a later clone's fds may take their numbers */
  outr = errr = -1;
  if (pipes[0] >= 0) { /* the child holds the write ends now */
    null_fd(1, O_WRONLY);
    null_fd(2, O_WRONLY);
  }

  for (;;) {
    if (exited && master < 0 && !sock_open && pipes[0] < 0 && pipes[1] < 0) break;
    struct pollfd p[6];
    int np = 0, isig, isock = -1, imaster = -1, iin = -1, ipipe[2] = { -1, -1 };
    p[isig = np++] = (struct pollfd){ sfd, POLLIN, 0 };
    if (sock_open) p[isock = np++] = (struct pollfd){ sock, POLLIN, 0 };
    if (master >= 0) p[imaster = np++] = (struct pollfd){ master, (short)(POLLIN | (inlen ? POLLOUT : 0)), 0 };
    if (master >= 0 && in_open && inlen < sizeof inbuf) p[iin = np++] = (struct pollfd){ 0, POLLIN, 0 };
    for (int k = 0; k < 2; k++)
      if (pipes[k] >= 0) p[ipipe[k] = np++] = (struct pollfd){ pipes[k], POLLIN, 0 };
    /* once the child is gone, drain what is left without waiting forever */
    int r = poll(p, (unsigned long)np, exited ? 200 : -1);
    if (r == 0) break;
    if (r < 0) continue;

    if (p[isig].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        int s = (int)si.ssi_signo, st;
        if (s == SIGCHLD) {
          if (!exited && waitpid(child, &st, WNOHANG) == child) exited = 1, status = st;
          /* the container's root is a mounting helper's (fuse-overlayfs): without it every file
           * access fails, so the container goes too, and the reason is said */
          for (int k = 0; k < nhelpers; k++) {
            if (helpers[k] <= 0 || !helper_mounts[k] || waitpid(helpers[k], &st, WNOHANG) != helpers[k]) continue;
            helpers[k] = -1;
            if (!exited) kill(child, SIGKILL);
            print_helper_error(helper_op[k], WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), helper_log[k]);
          }
        } else if (s == SIGWINCH && master >= 0) {
          copy_winsize(master);
        } else if (!exited) {
          kill(child, s);
        }
      }
    }
    if (isock >= 0 && p[isock].revents) {
      struct msg m;
      int fd;
      if (!receive(&m, &fd)) {
        sock_open = 0; /* the child exec'd (or died): no more reports */
        if (err_index < 0 && !exited && !(flags & SV_AFTER)) ready();
      } else if (m.type == MSG_ERROR && err_index < 0 && m.index >= 0 && (uint32_t)m.index < nops) {
        err_index = m.index, err = m.err;
      } else if (m.type == MSG_MASTER && fd >= 0 && master < 0) {
        master = fd;
        fcntl(master, F_SETFL, O_NONBLOCK);
        if (isatty(0)) copy_winsize(master);
        if (in_open && tcgetattr(0, &saved_tio) == 0) {
          struct termios raw = saved_tio;
          cfmakeraw(&raw);
          if (tcsetattr_flush(0, &raw) == 0) raw_set = 1;
        }
        send(sock, "", 1, MSG_NOSIGNAL);
      } else if (fd >= 0) {
        close(fd);
      }
    }
    if (imaster >= 0 && p[imaster].revents) {
      if ((p[imaster].revents & POLLOUT) && inlen) {
        ssize_t w = write(master, inbuf, inlen);
        if (w > 0) memmove(inbuf, inbuf + w, inlen - (size_t)w), inlen -= (size_t)w;
      }
      if (p[imaster].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[16384];
        ssize_t n = read(master, buf, sizeof buf);
        if (n > 0 && detached) log_data(&streams[0], buf, (size_t)n);
        else if (n > 0) write_all(1, buf, (size_t)n);
        else if (n == 0 || errno != EAGAIN) close(master), master = -1;
      }
    }
    if (iin >= 0 && p[iin].revents) {
      ssize_t n = read(0, inbuf + inlen, sizeof inbuf - inlen);
      if (n > 0) inlen += (size_t)n;
      else in_open = 0, inbuf[inlen++] = 4; /* end of input: send ^D */
    }
    for (int k = 0; k < 2; k++) {
      if (ipipe[k] < 0 || !p[ipipe[k]].revents) continue;
      char buf[16384];
      ssize_t n = read(pipes[k], buf, sizeof buf);
      if (n > 0) log_data(&streams[k], buf, (size_t)n);
      else if (n == 0 || errno != EINTR) close(pipes[k]), pipes[k] = -1;
    }
  }
  for (int k = 0; k < 2; k++) {
    if (streams[k].len) log_flush(&streams[k], 'P');
    if (pipes[k] >= 0) close(pipes[k]);
  }
  restore_tty();
  while (!exited && waitpid(child, &status, 0) < 0 && errno == EINTR) {}
  if (err_index >= 0) {
    print_error((uint32_t)err_index, err, -1);
    if (ops[err_index].code == OP_EXEC) return exec_status(&ops[err_index], err);
    return 125;
  }
  if (!(flags & SV_AFTER)) ready(); /* a command that ran, however briefly */
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    static const char m[] = "bunker-stage: run by bunker, not by hand\n";
    write(2, m, sizeof m - 1);
    return 125;
  }
  int planfd = 0;
  const char *p = argv[1];
  for (; *p >= '0' && *p <= '9' && planfd < 1 << 20; p++) planfd = planfd * 10 + (*p - '0');
  if (*p || p == argv[1]) die_plan("plan fd");
  parse_plan(planfd);
  prctl(PR_SET_NAME, (unsigned long)"bunker", 0, 0, 0); /* not the memfd's number */
  /* Bun may leave stdio non-blocking; the container must not inherit that. */
  for (int fd = 0; fd < 3; fd++) {
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl >= 0 && (fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  if (close_from3(0) < 0) fail(UINT32_MAX - 1, errno); /* nothing of Bun's may reach the child */
  /* and fds 0-2 must be open, or the sync socket could land on one of them */
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD, 0) < 0 && open("/dev/null", O_RDWR) < 0) fail(UINT32_MAX - 1, errno);

  /* block what we forward before the clone, so nothing arriving during the
   * setup is lost or kills us; supervise() collects it with a signalfd */
  fwdset = sigbit(SIGCHLD);
  for (uint32_t i = 0; i < nops; i++)
    if (ops[i].code == OP_SUPERVISE) fwdset |= (ksigset_t)ops[i].ints[1] & ~(sigbit(SIGKILL) | sigbit(SIGSTOP));
  sigprocmask(SIG_BLOCK, &fwdset, NULL);
  sigdisposition(SIGPIPE, SIG_IGN); /* a closed stdout must not kill us before we tidy up */

  int code = run_ops(0);
  cleanup();
  return code;
}

/* The parent's ops from `from` on; the container's exit status. */
static int run_ops(uint32_t from) {
  int code = 0;
  for (uint32_t i = from; i < nops; i++) {
    struct op *o = &ops[i];
    if (o->code >= OP_CHILD_BASE) continue;
    switch (o->code) {
    case OP_CLONE: {
      int sp[2];
      if (sock >= 0) close(sock); /* a plan may clone again, after the container (to tidy up) */
      if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) fail(i, errno);
      child = clone_((unsigned long)o->ints[0] | SIGCHLD);
      if (child < 0) fail(i, errno);
      if (child == 0) {
        close(sp[0]);
        sock = sp[1];
        child_main(i + 1);
      }
      close(sp[1]);
      sock = sp[0];
      /* opened now, while the child waits for its go and is surely dumpable */
      if (userns < 0 && (o->ints[0] & CLONE_NEWUSER) && has_op(OP_REJOIN) && (userns = open_proc(child, "ns/user", O_RDONLY)) < 0) fail(i, errno);
      break;
    }
    case OP_WRITE: {
      int fd = open(subst_pid(o->strs[0]), O_WRONLY | O_CLOEXEC);
      if (fd < 0) fail(i, errno);
      const char *data = subst_pid(o->strs[1]); /* a cgroup.procs gets the child's pid */
      size_t n = strlen(data);
      if (write(fd, data, n) != (ssize_t)n) fail(i, errno);
      close(fd);
      break;
    }
    case OP_SPAWN: spawn(i, o); break;
    case OP_RELEASE:
      wait_spawned();
      /* a child that failed while its helper started has left its report: supervise() reads it */
      if (send(sock, "", 1, MSG_NOSIGNAL) != 1 && errno != EPIPE && errno != ECONNRESET) fail(i, errno);
      break;
    case OP_SUPERVISE:
      if (o->ints[0] & SV_AFTER) supervise((int)o->ints[0]); /* it prints its own failure */
      else code = supervise((int)o->ints[0]), stop_helpers();
      break;
    case OP_STATUS: {
      char m[64];
      struct buf b = BUF(m);
      putnum(&b, code), put(&b, " ", 1), puttime(&b);
      if (o->nstr > 1 && *o->strs[1] && oom_killed(o->strs[1])) puts_(&b, " oom");
      put(&b, "\n", 1);
      write_atomic(o->strs[0], &b);
      break;
    }
    case OP_DETACH:
      if (do_detach(o) < 0) fail(i, errno);
      break;
    case OP_RECORD: {
      char m[160];
      struct buf b = BUF(m);
      putnum(&b, getpid()), put(&b, " ", 1);
      if (starttime(getpid(), &b) < 0) fail(i, errno);
      put(&b, " ", 1), putnum(&b, child), put(&b, " ", 1);
      if (starttime(child, &b) < 0) fail(i, errno);
      put(&b, " ", 1), puttime(&b), put(&b, "\n", 1);
      /* under the state's lock: `bunker rm` either sees the record, or has removed the
       * directory first and the write fails, and the container goes with this stage */
      int lock = *o->strs[1] ? open(o->strs[1], O_RDONLY | O_CLOEXEC) : -1;
      if (*o->strs[1] && (lock < 0 || flock(lock, LOCK_EX) < 0)) fail(i, errno);
      if (keep_errno(write_atomic(o->strs[0], &b), lock) < 0) fail(i, errno);
      break;
    }
    case OP_JOIN:
      if (do_join(o) < 0) {
        if (errno == ESRCH && (o->flags & F_GONE_QUIET)) _exit(STAGE_UNREAD);
        fail(i, errno);
      }
      break;
    case OP_HELPER:
      if (!abandoned) helper(i, o);
      break;
    case OP_API:
      if (!abandoned && api(o) < 0) fail(i, errno);
      break;
    case OP_REJOIN:
      /* non-dumpable first: what may still run in that namespace cannot ptrace us */
      if (userns < 0) fail(i, EBADF);
      if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || setns(userns, CLONE_NEWUSER) < 0) fail(i, errno);
      close(userns);
      userns = -1;
      break;
    case OP_CLEANUP: break; /* done once, at exit */
    default: fail(i, ENOSYS);
    }
  }
  return code;
}
