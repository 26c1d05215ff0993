/*
 * The little of a C library that bunker-stage needs, on raw x86-64 system
 * calls. Without libc the stage is ~30 KB instead of ~700 KB: bunker embeds
 * it, copies it into a sealed memfd and execs it on every `run`, and on a
 * slow VM the size of that copy and exec is most of the stage's cost.
 *
 * Wrappers follow libc's convention: -1 with errno set on failure.
 * Only kernel UAPI headers are used (no libc headers).
 */
#ifndef BUNKER_NOLIBC_H
#define BUNKER_NOLIBC_H

#include <asm/unistd.h>
#include <asm/termios.h>
#include <asm/stat.h>
#include <asm/statfs.h>
#include <asm/ioctls.h>
#include <asm/signal.h>
#include <linux/capability.h>
#include <linux/errno.h>
#include <linux/fcntl.h>
#include <linux/mman.h>
#include <linux/mount.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>
#include <linux/poll.h>
#include <linux/prctl.h>
#include <linux/resource.h>
#include <linux/sched.h>
#include <linux/signalfd.h>
#include <linux/sockios.h>
#include <linux/stat.h>
#include <linux/uio.h>
#include <linux/wait.h>

#if !defined(__x86_64__)
#error "bunker-stage is written for x86-64"
#endif

typedef unsigned long size_t;
typedef long ssize_t;
typedef int pid_t;
typedef unsigned int uid_t;
typedef unsigned int gid_t;
typedef unsigned long long uint64_t;
typedef long long int64_t;
typedef unsigned int uint32_t;
typedef int int32_t;
typedef unsigned short uint16_t;
typedef unsigned char uint8_t;
#define NULL ((void *)0)
#define PATH_MAX 4096
#define NAME_MAX 255
#define UINT32_MAX 0xffffffffu
#define NSIG_ 64
#define MNT_DETACH 2

static int errno;

/* ---- system calls ---------------------------------------------------------- */
static inline long sc6(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#define SC(n, a, b, c, d, e, f) sc6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static long ret_(long r) {
  if (r < 0 && r > -4096) {
    errno = (int)-r;
    return -1;
  }
  return r;
}
#define SYS6(n, a, b, c, d, e, f) ret_(SC(n, a, b, c, d, e, f))
#define SYS5(n, a, b, c, d, e) SYS6(n, a, b, c, d, e, 0)
#define SYS4(n, a, b, c, d) SYS6(n, a, b, c, d, 0, 0)
#define SYS3(n, a, b, c) SYS6(n, a, b, c, 0, 0, 0)
#define SYS2(n, a, b) SYS6(n, a, b, 0, 0, 0, 0)
#define SYS1(n, a) SYS6(n, a, 0, 0, 0, 0, 0)
#define SYS0(n) SYS6(n, 0, 0, 0, 0, 0, 0)

static __attribute__((noreturn)) void _exit(int code) {
  for (;;) SC(__NR_exit_group, code, 0, 0, 0, 0, 0);
}
#define exit _exit

static ssize_t read(int fd, void *b, size_t n) { return SYS3(__NR_read, fd, b, n); }
static ssize_t write(int fd, const void *b, size_t n) { return SYS3(__NR_write, fd, b, n); }
static ssize_t pread(int fd, void *b, size_t n, long off) { return SYS4(__NR_pread64, fd, b, n, off); }
static int close(int fd) { return (int)SYS1(__NR_close, fd); }
static int openat(int dir, const char *p, int flags, int mode) { return (int)SYS4(__NR_openat, dir, p, flags, mode); }
static int open(const char *p, int flags) { return openat(AT_FDCWD, p, flags, 0); }
static int fstat(int fd, struct stat *st) { return (int)SYS2(__NR_fstat, fd, st); }
static int statfs(const char *p, struct statfs *st) { return (int)SYS2(__NR_statfs, p, st); }
static int mount(const char *src, const char *tgt, const char *type, unsigned long flags, const void *data) {
  return (int)SYS5(__NR_mount, src, tgt, type, flags, data);
}
static int umount2(const char *tgt, int flags) { return (int)SYS2(__NR_umount2, tgt, flags); }
static int pivot_root(const char *n, const char *o) { return (int)SYS2(__NR_pivot_root, n, o); }
static int chdir(const char *p) { return (int)SYS1(__NR_chdir, p); }
static int fchdir(int fd) { return (int)SYS1(__NR_fchdir, fd); }
static int mkdirat(int dir, const char *p, int mode) { return (int)SYS3(__NR_mkdirat, dir, p, mode); }
static int symlinkat(const char *target, int dir, const char *p) { return (int)SYS3(__NR_symlinkat, target, dir, p); }
static ssize_t readlinkat(int dir, const char *p, char *b, size_t n) { return SYS4(__NR_readlinkat, dir, p, b, n); }
static int unlink(const char *p) { return (int)SYS3(__NR_unlinkat, AT_FDCWD, p, 0); }
static int unlinkat(int dir, const char *p, int flags) { return (int)SYS3(__NR_unlinkat, dir, p, flags); }
static int mknodat(int dir, const char *p, unsigned mode, unsigned dev) { return (int)SYS4(__NR_mknodat, dir, p, mode, dev); }
static int fchownat(int dir, const char *p, uid_t u, gid_t g, int flags) { return (int)SYS5(__NR_fchownat, dir, p, u, g, flags); }
static int fchown(int fd, uid_t u, gid_t g) { return (int)SYS3(__NR_fchown, fd, u, g); }
static int fchmod(int fd, unsigned mode) { return (int)SYS2(__NR_fchmod, fd, mode); }
static int fchmodat(int dir, const char *p, unsigned mode) { return (int)SYS3(__NR_fchmodat, dir, p, mode); }
static int linkat(int od, const char *op, int nd, const char *np, int flags) { return (int)SYS5(__NR_linkat, od, op, nd, np, flags); }
struct timespec_ { long sec, nsec; };
static int utimensat(int dir, const char *p, const struct timespec_ t[2], int flags) { return (int)SYS4(__NR_utimensat, dir, p, t, flags); }
static long getdents64(int fd, void *buf, size_t n) { return SYS3(__NR_getdents64, fd, buf, n); }
static int fstatat(int dir, const char *p, struct stat *st, int flags) { return (int)SYS4(__NR_newfstatat, dir, p, st, flags); }
static ssize_t flistxattr(int fd, char *list, size_t n) { return SYS3(__NR_flistxattr, fd, list, n); }
static ssize_t fgetxattr(int fd, const char *name, void *v, size_t n) { return SYS4(__NR_fgetxattr, fd, name, v, n); }
static long lseek(int fd, long off, int whence) { return SYS3(__NR_lseek, fd, off, whence); }
static ssize_t splice(int in, long *inoff, int out, long *outoff, size_t n, unsigned flags) {
  return SYS6(__NR_splice, in, inoff, out, outoff, n, flags);
}
static int fsetxattr(int fd, const char *name, const void *v, size_t n, int flags) { return (int)SYS5(__NR_fsetxattr, fd, name, v, n, flags); }
static int renameat(int od, const char *o, int nd, const char *n) { return (int)SYS4(__NR_renameat, od, o, nd, n); }
static int pipe2(int fds[2], int flags) { return (int)SYS2(__NR_pipe2, fds, flags); }
static int pidfd_open(pid_t pid, unsigned flags) { return (int)SYS2(__NR_pidfd_open, pid, flags); }
static int setns(int fd, int type) { return (int)SYS2(__NR_setns, fd, type); }
static int unshare(int flags) { return (int)SYS1(__NR_unshare, flags); }
#define LOCK_EX 2
static int flock(int fd, int op) { return (int)SYS2(__NR_flock, fd, op); }
static ssize_t copy_file_range(int in, long *inoff, int out, long *outoff, size_t n, unsigned flags) {
  return SYS6(__NR_copy_file_range, in, inoff, out, outoff, n, flags);
}
#define CLOCK_REALTIME 0
static int clock_gettime(int clk, struct timespec_ *t) { return (int)SYS2(__NR_clock_gettime, clk, t); }
static int rmdir(const char *p) { return (int)SYS3(__NR_unlinkat, AT_FDCWD, p, AT_REMOVEDIR); }
static int openat2(int dir, const char *p, struct open_how *how) { return (int)SYS4(__NR_openat2, dir, p, how, sizeof *how); }
static int mount_setattr(int dir, const char *p, unsigned flags, struct mount_attr *a) {
  return (int)SYS5(__NR_mount_setattr, dir, p, flags, a, sizeof *a);
}
static int open_tree(int dir, const char *p, unsigned flags) { return (int)SYS3(__NR_open_tree, dir, p, flags); }
static int prctl(int op, unsigned long a, unsigned long b, unsigned long c, unsigned long d) {
  return (int)SYS5(__NR_prctl, op, a, b, c, d);
}
static int capset(cap_user_header_t h, cap_user_data_t d) { return (int)SYS2(__NR_capset, h, d); }
static int setgroups(size_t n, const gid_t *g) { return (int)SYS2(__NR_setgroups, n, g); }
static int setresuid(uid_t r, uid_t e, uid_t s) { return (int)SYS3(__NR_setresuid, r, e, s); }
static int setresgid(gid_t r, gid_t e, gid_t s) { return (int)SYS3(__NR_setresgid, r, e, s); }
static int prlimit(int pid, int res, const struct rlimit *n, struct rlimit *o) { return (int)SYS4(__NR_prlimit64, pid, res, n, o); }
static int close_range(unsigned a, unsigned b, unsigned flags) { return (int)SYS3(__NR_close_range, a, b, flags); }
static int execve(const char *p, char *const argv[], char *const envp[]) { return (int)SYS3(__NR_execve, p, argv, envp); }
static pid_t clone_(unsigned long flags) { return (pid_t)SYS5(__NR_clone, flags, 0, 0, 0, 0); }
static pid_t fork(void) { return clone_(SIGCHLD); }
static int kill(pid_t pid, int sig) { return (int)SYS2(__NR_kill, pid, sig); }
static pid_t waitpid(pid_t pid, int *status, int options) { return (pid_t)SYS4(__NR_wait4, pid, status, options, 0); }
static int ioctl(int fd, unsigned long req, void *arg) { return (int)SYS3(__NR_ioctl, fd, req, arg); }
static int fcntl(int fd, int cmd, long arg) { return (int)SYS3(__NR_fcntl, fd, cmd, arg); }
static int dup2(int a, int b) { return (int)SYS2(__NR_dup2, a, b); }
static int memfd_create(const char *name, unsigned flags) { return (int)SYS2(__NR_memfd_create, name, flags); }
static pid_t setsid(void) { return (pid_t)SYS0(__NR_setsid); }
static int setpgid(pid_t p, pid_t g) { return (int)SYS2(__NR_setpgid, p, g); }
static pid_t getpid(void) { return (pid_t)SYS0(__NR_getpid); }
static pid_t getppid(void) { return (pid_t)SYS0(__NR_getppid); }
static int sethostname(const char *n, size_t l) { return (int)SYS2(__NR_sethostname, n, l); }
static int umask(int m) { return (int)SYS1(__NR_umask, m); }
static int poll(struct pollfd *p, unsigned long n, int timeout) { return (int)SYS3(__NR_poll, p, n, timeout); }
static char *getcwd(char *b, size_t n) { return SYS2(__NR_getcwd, b, n) < 0 ? NULL : b; }
static void *mmap_anon(size_t n) {
  long r = SC(__NR_mmap, 0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r < 0 && r > -4096) {
    errno = (int)-r;
    return NULL;
  }
  return (void *)r;
}

/* sockets (AF_UNIX socketpair, AF_INET datagram for the loopback ioctl) */
#define AF_UNIX 1
#define AF_INET 2
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_SEQPACKET 5
struct sockaddr_un_ {
  unsigned short family;
  char path[108];
};
#define SOCK_CLOEXEC O_CLOEXEC
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MSG_NOSIGNAL 0x4000
#define MSG_CMSG_CLOEXEC 0x40000000
struct msghdr {
  void *msg_name;
  int msg_namelen;
  struct iovec *msg_iov;
  size_t msg_iovlen;
  void *msg_control;
  size_t msg_controllen;
  int msg_flags;
};
struct cmsghdr {
  size_t cmsg_len;
  int cmsg_level;
  int cmsg_type;
};
#define CMSG_ALIGN(n) (((n) + sizeof(size_t) - 1) & ~(sizeof(size_t) - 1))
#define CMSG_SPACE(n) (CMSG_ALIGN(n) + CMSG_ALIGN(sizeof(struct cmsghdr)))
#define CMSG_LEN(n) (CMSG_ALIGN(sizeof(struct cmsghdr)) + (n))
#define CMSG_DATA(c) ((unsigned char *)(c) + CMSG_ALIGN(sizeof(struct cmsghdr)))
static int socket(int dom, int type, int proto) { return (int)SYS3(__NR_socket, dom, type, proto); }
static int socketpair(int dom, int type, int proto, int sv[2]) { return (int)SYS4(__NR_socketpair, dom, type, proto, sv); }
static ssize_t sendmsg(int fd, const struct msghdr *m, int flags) { return SYS3(__NR_sendmsg, fd, m, flags); }
static ssize_t recvmsg(int fd, struct msghdr *m, int flags) { return SYS3(__NR_recvmsg, fd, m, flags); }
static int connect(int fd, const void *addr, unsigned len) { return (int)SYS3(__NR_connect, fd, addr, len); }
static ssize_t send(int fd, const void *b, size_t n, int flags) { return SYS6(__NR_sendto, fd, b, n, flags, 0, 0); }
struct ifreq_ {
  char name[16];
  short flags;
  char pad[22];
};
#define IFF_UP 0x1
#define IFF_RUNNING 0x40

/* signals: the kernel's 64-bit sigset; no handlers are ever installed */
typedef unsigned long ksigset_t;
#define sigbit(s) (1UL << ((s) - 1))
struct ksigaction {
  void *handler;
  unsigned long flags;
  void *restorer;
  ksigset_t mask;
};
static int sigprocmask(int how, const ksigset_t *set, ksigset_t *old) {
  return (int)SYS4(__NR_rt_sigprocmask, how, set, old, sizeof(ksigset_t));
}
/* SIG_DFL or SIG_IGN: neither needs a restorer */
static int sigdisposition(int sig, void *handler) {
  struct ksigaction sa = { handler, 0, NULL, 0 };
  return (int)SYS4(__NR_rt_sigaction, sig, &sa, NULL, sizeof(ksigset_t));
}
static int signalfd(const ksigset_t *set, int flags) { return (int)SYS4(__NR_signalfd4, -1, set, sizeof(ksigset_t), flags); }

/* terminals */
static int tcgetattr(int fd, struct termios *t) { return ioctl(fd, TCGETS, t); }
static int tcsetattr_flush(int fd, const struct termios *t) { return ioctl(fd, TCSETSF, (void *)t); }
static int isatty(int fd) {
  struct termios t;
  return tcgetattr(fd, &t) == 0;
}
static void cfmakeraw(struct termios *t) {
  t->c_iflag &= ~(unsigned)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  t->c_oflag &= ~(unsigned)OPOST;
  t->c_lflag &= ~(unsigned)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  t->c_cflag &= ~(unsigned)(CSIZE | PARENB);
  t->c_cflag |= CS8;
  t->c_cc[VMIN] = 1;
  t->c_cc[VTIME] = 0;
}

/* ---- memory and strings ---------------------------------------------------- */
/* gcc may emit calls to these for struct copies; keep them out-of-line. */
void *memcpy(void *d, const void *s, size_t n) {
  unsigned char *a = d;
  const unsigned char *b = s;
  while (n--) *a++ = *b++;
  return d;
}
void *memmove(void *d, const void *s, size_t n) {
  unsigned char *a = d;
  const unsigned char *b = s;
  if (a < b) while (n--) *a++ = *b++;
  else while (n--) a[n] = b[n];
  return d;
}
void *memset(void *d, int c, size_t n) {
  unsigned char *a = d;
  while (n--) *a++ = (unsigned char)c;
  return d;
}
int memcmp(const void *x, const void *y, size_t n) {
  const unsigned char *a = x, *b = y;
  for (; n; n--, a++, b++)
    if (*a != *b) return *a - *b;
  return 0;
}
static size_t strlen(const char *s) {
  const char *p = s;
  while (*p) p++;
  return (size_t)(p - s);
}
static int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (unsigned char)*a - (unsigned char)*b;
}
static int strncmp_(const char *a, const char *b, size_t n) {
  for (; n && *a && *a == *b; n--) a++, b++;
  return n ? (unsigned char)*a - (unsigned char)*b : 0;
}
static char *strchrnul(const char *s, int c) {
  while (*s && *s != (char)c) s++;
  return (char *)s;
}
static char *strchr(const char *s, int c) {
  char *p = strchrnul(s, c);
  return *p == (char)c ? p : NULL;
}
static char *strrchr(const char *s, int c) {
  const char *r = NULL;
  for (; *s; s++)
    if (*s == (char)c) r = s;
  return (char *)r;
}
static char *strstr(const char *h, const char *n) {
  size_t k = strlen(n);
  for (; *h; h++)
    if (memcmp(h, n, k) == 0) return (char *)h;
  return NULL;
}

/* A bump allocator over mmap: the stage allocates once, at start, and never frees. */
static char *arena;
static size_t arena_left;
static void *xalloc(size_t n) {
  if (n > (1UL << 40)) n = ~(size_t)0; /* absurd: let mmap fail below */
  else n = (n + 15) & ~(size_t)15;
  if (n > arena_left) {
    size_t chunk = n > (1 << 20) ? n : (1 << 20);
    arena = mmap_anon(chunk);
    if (!arena) {
      static const char m[] = "bunker-stage: out of memory\n";
      write(2, m, sizeof m - 1);
      _exit(125);
    }
    arena_left = chunk;
  }
  void *p = arena;
  arena += n, arena_left -= n;
  return p; /* anonymous memory is already zeroed */
}

/* ---- output: a string builder instead of printf ------------------------------ */
struct buf {
  char *p;
  size_t cap, len;  /* len < cap always: p[len] is the terminating NUL */
  int overflow;     /* something did not fit; what fits was kept */
};
#define BUF(array) { array, sizeof array, 0, 0 }
static void put(struct buf *b, const char *s, size_t n) {
  size_t room = b->cap - 1 - b->len;
  if (n > room) n = room, b->overflow = 1;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }
static void putnum(struct buf *b, long v) {
  char d[24];
  int i = sizeof d;
  int neg = v < 0;
  unsigned long u = neg ? (unsigned long)-v : (unsigned long)v;
  do d[--i] = (char)('0' + u % 10), u /= 10;
  while (u);
  if (neg) d[--i] = '-';
  put(b, d + i, sizeof d - (size_t)i);
}
/* v in decimal, zero-padded to width digits */
static void putpad(struct buf *b, long v, int width) {
  char d[24];
  int i = sizeof d;
  do d[--i] = (char)('0' + v % 10), v /= 10, width--;
  while (v || width > 0);
  put(b, d + i, sizeof d - (size_t)i);
}
/* The time now in RFC 3339 with nanoseconds, UTC: 2026-11-27T21:44:21.123456789Z */
static void puttime(struct buf *b) {
  struct timespec_ t = { 0, 0 };
  clock_gettime(CLOCK_REALTIME, &t);
  long days = t.sec / 86400, secs = t.sec % 86400;
  /* civil date from days since 1970-01-01 (H. Hinnant's algorithm) */
  long z = days + 719468, era = z / 146097, doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9, y = yoe + era * 400 + (m <= 2);
  putpad(b, y, 4), put(b, "-", 1), putpad(b, m, 2), put(b, "-", 1), putpad(b, d, 2), put(b, "T", 1);
  putpad(b, secs / 3600, 2), put(b, ":", 1), putpad(b, secs / 60 % 60, 2), put(b, ":", 1), putpad(b, secs % 60, 2);
  put(b, ".", 1), putpad(b, t.nsec, 9), put(b, "Z", 1);
}
static int overflowed(const struct buf *b) { return b->overflow; }
static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w, n -= (size_t)w;
  }
}
/* Print a message line (truncated if it overflowed) to fd. */
static void emit(int fd, struct buf *b) {
  write_all(fd, b->p, b->len);
  write_all(fd, "\n", 1);
}

/* errno names and their meanings, for messages */
static const struct {
  int n;
  const char *name, *msg;
} ERRNOS[] = {
  { EPERM, "EPERM", "Operation not permitted" }, { ENOENT, "ENOENT", "No such file or directory" },
  { ESRCH, "ESRCH", "No such process" }, { EINTR, "EINTR", "Interrupted system call" },
  { EIO, "EIO", "Input/output error" }, { E2BIG, "E2BIG", "Argument list too long" },
  { ENOEXEC, "ENOEXEC", "Exec format error" }, { EBADF, "EBADF", "Bad file descriptor" },
  { ECHILD, "ECHILD", "No child processes" }, { EAGAIN, "EAGAIN", "Resource temporarily unavailable" },
  { ENOMEM, "ENOMEM", "Cannot allocate memory" }, { EACCES, "EACCES", "Permission denied" },
  { EFAULT, "EFAULT", "Bad address" }, { EBUSY, "EBUSY", "Device or resource busy" },
  { EEXIST, "EEXIST", "File exists" }, { ENODEV, "ENODEV", "No such device" },
  { ENOTDIR, "ENOTDIR", "Not a directory" }, { EISDIR, "EISDIR", "Is a directory" },
  { EINVAL, "EINVAL", "Invalid argument" }, { EMFILE, "EMFILE", "Too many open files" },
  { ENOTTY, "ENOTTY", "Inappropriate ioctl for device" }, { ETXTBSY, "ETXTBSY", "Text file busy" },
  { ENOSPC, "ENOSPC", "No space left on device" }, { EROFS, "EROFS", "Read-only file system" },
  { EPIPE, "EPIPE", "Broken pipe" }, { ENAMETOOLONG, "ENAMETOOLONG", "File name too long" },
  { ENOSYS, "ENOSYS", "Function not implemented" }, { ENOTEMPTY, "ENOTEMPTY", "Directory not empty" },
  { ELOOP, "ELOOP", "Too many levels of symbolic links" }, { EOVERFLOW, "EOVERFLOW", "Value too large for defined data type" },
  { EUSERS, "EUSERS", "Too many users" }, { EOPNOTSUPP, "EOPNOTSUPP", "Operation not supported" },
  { EXDEV, "EXDEV", "Invalid cross-device link" }, { EDQUOT, "EDQUOT", "Disk quota exceeded" },
  { ETIMEDOUT, "ETIMEDOUT", "Timed out" }, { ENOTCONN, "ENOTCONN", "Transport endpoint is not connected" },
};
static void puterr(struct buf *l, int e) {
  for (size_t i = 0; i < sizeof ERRNOS / sizeof *ERRNOS; i++) {
    if (ERRNOS[i].n != e) continue;
    puts_(l, ERRNOS[i].name);
    puts_(l, " (");
    puts_(l, ERRNOS[i].msg);
    puts_(l, ")");
    return;
  }
  puts_(l, "errno ");
  putnum(l, e);
}

/* ---- process entry --------------------------------------------------------- */
int main(int argc, char **argv);
__attribute__((used)) static void start_c(long *sp) {
  int argc = (int)sp[0];
  _exit(main(argc, (char **)(sp + 1)));
}
__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call start_c\n hlt\n");

#endif
