/*
 * OP_UNPACK, included by stage.c: apply a stream of file-system records
 * (written by src/image/unpack.ts) beneath one directory, from inside the
 * user namespace, so that owners are the container's own ids.
 *
 * The TypeScript side decides everything (which entries, names, owners,
 * modes, whiteouts); this only carries records out, and it can neither
 * leave the directory nor follow a symlink: every parent is opened with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), every last component
 * with O_NOFOLLOW or an *at call that does not follow.
 *
 * Record: a 40-byte header, then path, link (or xattr name), then size bytes.
 *   0 u8 type  1 u8 flags  2 u16 pathlen  4 u32 mode  8 u32 uid  12 u32 gid
 *   16 u32 linklen  20 u32 nsec  24 i64 sec  32 u64 size
 * Result on stdout: "ok N" (records applied) or "fail N ERRNO" (the
 * record that failed, counting from 0). Before it, at each U_DIGESTS
 * record, a line with the sha256 (hex) of each UF_HASH file since the last,
 * at most HASHED_MAX of them.
 *
 * OP_RMTREE removes what OP_UNPACK made: inside the user namespace, files
 * owned by subordinate ids can be removed; outside, they cannot.
 */

enum { U_END, U_DIR, U_FILE, U_SYMLINK, U_HARDLINK, U_WHITEOUT, U_OPAQUE, U_XATTR, U_TIMES, U_UNLINK, U_FIFO, U_DIGESTS, U_FAIL };
#define UF_CHOWN 0x1 /* give the entry the record's uid and gid */
#define UF_DIR 0x2   /* U_UNLINK: the entry is a directory */
#define UF_HASH 0x4  /* U_FILE: report the sha256 of its data */

#include "sha256.h"

#define XATTR_MAX 65536 /* XATTR_SIZE_MAX and XATTR_LIST_MAX: no file has larger values or lists */

static int uroot = -1;
/* 1 MiB, as the pipe: a bundle's files, hashed here, all pass through it (64 KiB
 * took ~5% longer per import); what is not hashed splices from 64 KiB up. */
static char ubuf[1 << 20];
#define SPLICE_MIN (1u << 16)
static size_t ubuf_off, ubuf_len;

/* Refill the buffer from stdin when it is empty; -1 (EPIPE at the end). */
static int ufill(void) {
  while (ubuf_off == ubuf_len) {
    ssize_t r = read(0, ubuf, sizeof ubuf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) { errno = r == 0 ? EPIPE : errno; return -1; }
    ubuf_off = 0, ubuf_len = (size_t)r;
  }
  return 0;
}

static int unspliceable; /* stdin is not a pipe, or the file system takes no splice */

/* Exactly n bytes from stdin into dst, or into fd when dst is NULL: what is
 * buffered by hand, the rest of a large file by splice from the pipe to the
 * file, never through this process's memory, unless it is hashed (h). */
static int uread_to(void *dst, int fd, uint64_t n, struct sha256 *h) {
  char *d = dst;
  while (n > 0) {
    while (!d && !h && !unspliceable && ubuf_off == ubuf_len && n >= SPLICE_MIN) {
      ssize_t r = splice(0, NULL, fd, NULL, n < (1u << 30) ? (size_t)n : (1u << 30), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EINVAL) { unspliceable = 1; break; } /* by hand from now on */
      if (r <= 0) { errno = r == 0 ? EPIPE : errno; return -1; }
      n -= (uint64_t)r;
    }
    if (n == 0) break;
    if (ufill() < 0) return -1;
    size_t take = ubuf_len - ubuf_off < n ? ubuf_len - ubuf_off : (size_t)n;
    if (d) {
      memcpy(d, ubuf + ubuf_off, take);
      d += take;
    } else {
      const char *p = ubuf + ubuf_off;
      if (h) sha256_update(h, p, take);
      for (size_t left = take; left > 0;) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, left -= (size_t)w;
      }
    }
    ubuf_off += take, n -= take;
  }
  return 0;
}
#define uread(dst, n) uread_to(dst, -1, n, NULL)
#define ucopy(fd, n, h) uread_to(NULL, fd, n, h)

/* The digests of UF_HASH files as hex lines, until U_DIGESTS asks for them
 * (src/image/unpack.ts: DIGEST_BATCH). Stdout is read only then: writing
 * them as they come could fill the pipe while bunker fills stdin. */
#define HASHED_MAX 4096
static char hashed[HASHED_MAX * 65];
static size_t hashed_len;

static int uhashed(struct sha256 *h) {
  static const char hex[] = "0123456789abcdef";
  uint8_t d[32];
  if (hashed_len == sizeof hashed) { errno = EOVERFLOW; return -1; }
  sha256_final(h, d);
  for (int i = 0; i < 32; i++) hashed[hashed_len++] = hex[d[i] >> 4], hashed[hashed_len++] = hex[d[i] & 15];
  hashed[hashed_len++] = '\n';
  return 0;
}

/* The directory that holds path (opened beneath the root, no symlinks) and
 * the last component. The last parent is kept open: archives go dir by dir. */
static char parent_path[PATH_MAX];
static int parent_fd = -1;
static int uparent(char *path, const char **name) {
  char *slash = strrchr(path, '/');
  if (!slash) {
    *name = path;
    return uroot;
  }
  *slash = 0;
  *name = slash + 1;
  if (parent_fd >= 0 && strcmp(parent_path, path) == 0) {
    *slash = '/';
    return parent_fd;
  }
  struct open_how how = { O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                          RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV };
  int fd = openat2(uroot, path, &how);
  if (fd >= 0) {
    if (parent_fd >= 0) close(parent_fd);
    parent_fd = fd;
    memcpy(parent_path, path, (size_t)(slash - path) + 1);
  }
  *slash = '/';
  return fd;
}

/* A directory was removed or replaced: forget the cached parent. */
static void uforget(void) {
  if (parent_fd >= 0) close(parent_fd);
  parent_fd = -1;
}

static int uowner(int fd, const char *name, uint8_t flags, uint32_t uid, uint32_t gid) {
  if (!(flags & UF_CHOWN)) return 0;
  return name ? fchownat(fd, name, uid, gid, AT_SYMLINK_NOFOLLOW) : fchown(fd, uid, gid);
}

/* "." or "..": a last component no record may name (TypeScript never sends one; this holds if it did). */
static int udots(const char *name) {
  return name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0));
}

static int uapply(uint8_t type, uint8_t flags, char *path, char *link, uint32_t mode, uint32_t uid, uint32_t gid,
                  const struct timespec_ t[2], uint64_t size) {
  const char *name;
  int dir = uparent(path, &name), fd = -1, rc = -1;
  if (dir < 0) return -1;
  if (udots(name)) { errno = EINVAL; return -1; }
  switch (type) {
  case U_DIR:
    /* its mode set after: it may be there already, or inherit a setgid bit from its parent */
    if (mkdirat(dir, name, 0700) < 0 && errno != EEXIST) return -1;
    if ((fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0)) < 0) return -1;
    rc = uowner(fd, NULL, flags, uid, gid) < 0 || fchmod(fd, mode) < 0 ? -1 : 0;
    break;
  case U_FILE: {
    /* made with its mode (the umask is 0; the store is private meanwhile), but for
     * setuid, setgid and sticky bits: owner first, as chown clears the first two */
    struct sha256 h;
    if (flags & UF_HASH) {
      static int able = -1;
      if (able < 0) able = sha256_ni_ok();
      if (!able) { errno = ENOSYS; return -1; }
      sha256_init(&h);
    }
    if ((fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777)) < 0) return -1;
    rc = ucopy(fd, size, (flags & UF_HASH) ? &h : NULL) < 0 || uowner(fd, NULL, flags, uid, gid) < 0 ||
                 ((mode & 07000) && fchmod(fd, mode) < 0) || utimensat(fd, NULL, t, 0) < 0 ||
                 ((flags & UF_HASH) && uhashed(&h) < 0) ? -1 : 0;
    break;
  }
  case U_SYMLINK:
    if (symlinkat(link, dir, name) < 0) return -1;
    return uowner(dir, name, flags, uid, gid) < 0 || utimensat(dir, name, t, AT_SYMLINK_NOFOLLOW) < 0 ? -1 : 0;
  case U_HARDLINK: { /* the target's parent, opened apart from the cached one */
    char *slash = strrchr(link, '/');
    const char *tname = slash ? slash + 1 : link;
    int tdir = uroot;
    if (udots(tname)) { errno = EINVAL; return -1; }
    if (slash) {
      struct open_how how = { O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                              RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV };
      *slash = 0;
      tdir = openat2(uroot, link, &how);
      *slash = '/';
      if (tdir < 0) return -1;
    }
    rc = linkat(tdir, tname, dir, name, 0);
    return tdir == uroot ? rc : keep_errno(rc, tdir);
  }
  case U_WHITEOUT: /* overlayfs's whiteout: a 0:0 character device (unprivileged since Linux 5.8) */
    return mknodat(dir, name, S_IFCHR, 0);
  case U_FIFO:
    if (mknodat(dir, name, S_IFIFO | 0600, 0) < 0) return -1;
    return uowner(dir, name, flags, uid, gid) < 0 || fchmodat(dir, name, mode) < 0 || utimensat(dir, name, t, AT_SYMLINK_NOFOLLOW) < 0 ? -1 : 0;
  case U_OPAQUE:
  case U_XATTR: {
    if ((fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0)) < 0) return -1;
    if (type == U_OPAQUE) {
      rc = fsetxattr(fd, "user.overlay.opaque", "y", 1, 0);
      break;
    }
    static char value[XATTR_MAX]; /* the kernel's XATTR_SIZE_MAX */
    if (size > sizeof value) { errno = E2BIG; break; }
    rc = uread(value, (size_t)size) < 0 ? -1 : fsetxattr(fd, link, value, (size_t)size, 0);
    break;
  }
  case U_TIMES:
    return utimensat(dir, name, t, AT_SYMLINK_NOFOLLOW);
  case U_UNLINK: /* dir may be the cached parent: forget it only after its use */
    rc = unlinkat(dir, name, (flags & UF_DIR) ? AT_REMOVEDIR : 0);
    if (flags & UF_DIR) uforget(); /* the cache may be the directory removed, or one below it */
    return rc;
  default:
    errno = EINVAL;
    return -1;
  }
  return keep_errno(rc, fd);
}

static void uresult(const char *what, uint32_t n, int err) {
  char m[64];
  struct buf b = BUF(m);
  puts_(&b, what);
  puts_(&b, " ");
  putnum(&b, n);
  if (err) puts_(&b, " "), putnum(&b, err);
  emit(1, &b);
}

static __attribute__((noreturn)) void do_unpack(const char *root) {
  umask(0);
  uroot = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (uroot < 0) uresult("fail", 0, errno), _exit(1);
  static char path[PATH_MAX], link[PATH_MAX];
  for (uint32_t n = 0;; n++) {
    unsigned char h[40];
    if (uread(h, sizeof h) < 0) uresult("fail", n, errno), _exit(1);
    uint16_t pathlen;
    uint32_t mode, uid, gid, linklen, nsec;
    int64_t sec;
    uint64_t size;
    memcpy(&pathlen, h + 2, 2), memcpy(&mode, h + 4, 4), memcpy(&uid, h + 8, 4), memcpy(&gid, h + 12, 4);
    memcpy(&linklen, h + 16, 4), memcpy(&nsec, h + 20, 4), memcpy(&sec, h + 24, 8), memcpy(&size, h + 32, 8);
    if (h[0] == U_END) {
      uresult("ok", n, 0);
      _exit(0);
    }
    if (h[0] == U_DIGESTS) {
      write_all(1, hashed, hashed_len);
      hashed_len = 0;
      continue;
    }
    if (pathlen == 0 || pathlen >= PATH_MAX || linklen >= PATH_MAX || uread(path, pathlen) < 0 || uread(link, linklen) < 0) {
      uresult("fail", n, errno ? errno : ENAMETOOLONG);
      _exit(1);
    }
    path[pathlen] = 0, link[linklen] = 0;
    if (strlen(path) != pathlen || strlen(link) != linklen) { /* a NUL inside would end the name early: "..\0x" is ".." */
      uresult("fail", n, EINVAL);
      _exit(1);
    }
    struct timespec_ t[2] = { { sec, nsec }, { sec, nsec } };
    errno = 0;
    if (uapply(h[0], h[1], path, link, mode & 07777, uid, gid, t, size) < 0) {
      uresult("fail", n, errno ? errno : EIO);
      _exit(1);
    }
  }
}

/* The entries of an open directory, "." and ".." left out. The buffer is
 * small, as every walk below recurses: a hostile tree may be 2000 levels deep. */
struct dirents {
  int fd;
  long n, off;
  char buf[1024];
};

/* The next name, or NULL at the end (errno set when getdents failed, else 0). */
static const char *next_entry(struct dirents *d) {
  for (;;) {
    if (d->off >= d->n) {
      errno = 0;
      d->n = getdents64(d->fd, d->buf, sizeof d->buf);
      d->off = 0;
      if (d->n <= 0) return NULL;
    }
    uint16_t reclen;
    memcpy(&reclen, d->buf + d->off + 16, 2);
    const char *name = d->buf + d->off + 19;
    d->off += reclen;
    if (!(name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))) return name;
  }
}

/* Remove name (below dirfd) and everything under it, never following a symlink. */
static int rm_at(int dirfd, const char *name) {
  if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR) return -1;
  struct dirents d = { openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0), 0, 0, { 0 } };
  if (d.fd < 0) return errno == ENOENT ? 0 : -1; /* another removal (a concurrent sweep) took it meanwhile */
  for (;;) { /* list, remove what was listed, list again until only . and .. are left */
    long removed = 0;
    for (const char *e; (e = next_entry(&d));) {
      if (rm_at(d.fd, e) < 0) return keep_errno(-1, d.fd);
      removed++;
    }
    if (errno) return keep_errno(-1, d.fd);
    if (!removed) break;
    if (lseek(d.fd, 0, 0) < 0) return keep_errno(-1, d.fd);
    d.n = d.off = 0;
  }
  close(d.fd);
  return unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
}

/* OP_RMTREE: path is absolute on the host; its parent is the caller's. */
static int do_rmtree(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash || !slash[1]) { errno = EINVAL; return -1; }
  char parent[PATH_MAX];
  size_t n = (size_t)(slash - path);
  if (n >= sizeof parent) { errno = ENAMETOOLONG; return -1; }
  memcpy(parent, path, n);
  parent[n] = 0;
  int dir = open(n ? parent : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -1;
  return keep_errno(rm_at(dir, slash + 1), dir);
}

/*
 * OP_PACK: the reverse of OP_UNPACK. Walk a directory (an overlay of an
 * image's layers, mounted in this mount namespace) and write its entries to
 * stdout as the same records, with owners as the container sees them; an
 * entry's U_XATTR records come before it.
 * Hard links are found here (the first path of an inode with several
 * links); what to do with the records is TypeScript's (src/bundle/).
 * A walk that fails ends with a U_FAIL record instead of U_END: the path
 * it failed at, and the errno as its size (a file's data cut short is made
 * up to its size first, so the record is read where a record is due).
 */
static char pbuf[1 << 16];
static size_t pbuf_len;

static void pflush(void) {
  write_all(1, pbuf, pbuf_len);
  pbuf_len = 0;
}

static void pout(const void *p, size_t n) {
  if (pbuf_len + n > sizeof pbuf) pflush();
  if (n > sizeof pbuf) write_all(1, p, n);
  else memcpy(pbuf + pbuf_len, p, n), pbuf_len += n;
}

static void precord(uint8_t type, const char *path, const char *link, const struct stat *st, uint64_t size) {
  unsigned char h[40];
  uint16_t pathlen = (uint16_t)strlen(path);
  uint32_t mode = st ? st->st_mode & 07777 : 0, uid = st ? st->st_uid : 0, gid = st ? st->st_gid : 0;
  uint32_t linklen = link ? (uint32_t)strlen(link) : 0, nsec = st ? (uint32_t)st->st_mtime_nsec : 0;
  int64_t sec = st ? (int64_t)st->st_mtime : 0;
  memset(h, 0, sizeof h);
  h[0] = type;
  memcpy(h + 2, &pathlen, 2), memcpy(h + 4, &mode, 4), memcpy(h + 8, &uid, 4), memcpy(h + 12, &gid, 4);
  memcpy(h + 16, &linklen, 4), memcpy(h + 20, &nsec, 4), memcpy(h + 24, &sec, 8), memcpy(h + 32, &size, 8);
  pout(h, sizeof h);
  pout(path, pathlen);
  if (linklen) pout(link, linklen);
}

/* user.* (but overlayfs's own) and file capabilities: what unpack keeps. Every
 * one of them, or the walk fails: none is left out without a word. Static
 * buffers: the kernel's largest list and value, and this never recurses. */
static int pxattrs(int fd, const char *path) {
  static char names[XATTR_MAX], value[XATTR_MAX];
  ssize_t n = flistxattr(fd, names, sizeof names);
  if (n < 0) return errno == EOPNOTSUPP ? 0 : -1;
  for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1) {
    const char *name = names + off;
    int user = memcmp(name, "user.", 5) == 0 && memcmp(name, "user.overlay.", 13) != 0;
    if (!user && strcmp(name, "security.capability") != 0) continue;
    ssize_t v = fgetxattr(fd, name, value, sizeof value);
    if (v < 0 && errno == ENODATA) continue; /* removed meanwhile */
    if (v < 0) return -1;
    precord(U_XATTR, path, name, NULL, (uint64_t)v);
    pout(value, (size_t)v);
  }
  return 0;
}

/* The walk is of a running container's files: they change as they are read. */
static int plive;

/*
 * A file's data: exactly st_size bytes. One that changes meanwhile (it
 * shrinks, grows or is written: a container started again during the
 * export) fails the walk with ESTALE: its record is already out, so what
 * is missing of its data is made up with zeros and U_FAIL follows, and the
 * export is refused rather than written torn. Of a running container, as
 * Docker and GNU tar take it: its first st_size bytes, with zeros for what
 * it lost meanwhile. Larger files move from the page cache to the pipe
 * with splice, never through this process's memory.
 */
static int pdata(int fd, const struct stat *st) {
  uint64_t size = (uint64_t)st->st_size, left = size;
  int failed = 1; /* what cut: reports */
  int spliced = size >= sizeof pbuf;
  if (spliced) pflush();
  while (left > 0) {
    size_t want = left < sizeof ubuf ? (size_t)left : sizeof ubuf;
    ssize_t r;
    if (spliced) {
      r = splice(fd, NULL, 1, NULL, left < (1u << 30) ? (size_t)left : (1u << 30), 0);
      if (r > 0) { left -= (uint64_t)r; continue; }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno != EINVAL) goto cut;
      spliced = 0; /* a file system without splice, or the end came early: on by hand */
      continue;
    }
    r = read(fd, ubuf, want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) goto cut;
    if (r == 0 && plive) { failed = 0; goto cut; } /* it shrank: zeros for the rest */
    if (r == 0) { errno = ESTALE; goto cut; } /* it shrank */
    pout(ubuf, (size_t)r);
    left -= (uint64_t)r;
  }
  struct stat now;
  if (plive) return 0;
  if (fstat(fd, &now) < 0) return -1;
  if ((uint64_t)now.st_size != size || now.st_mtime != st->st_mtime || now.st_mtime_nsec != st->st_mtime_nsec) { errno = ESTALE; return -1; }
  return 0;
cut: { /* the rest of the size the record said: so that U_FAIL comes where a record is due, or (live) the file ends there */
    int err = errno;
    memset(ubuf, 0, sizeof ubuf);
    for (; left > 0; left -= left < sizeof ubuf ? left : sizeof ubuf) pout(ubuf, left < sizeof ubuf ? (size_t)left : sizeof ubuf);
    errno = err;
    return failed ? -1 : 0;
  }
}

/* Multiply-linked inodes seen so far, by (dev, ino): open addressing in a
 * power-of-two table at most half full (a list scanned per link was
 * quadratic in the number of hard links). */
struct seen { uint64_t dev, ino; char *path; };
static struct seen *links;
static size_t nlinks, caplinks;

static size_t slot(uint64_t dev, uint64_t ino, size_t cap) {
  return (size_t)(((ino ^ (dev << 40)) * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

/* The first path of a multiply-linked inode, or NULL (remembering this one). */
static const char *plink(const struct stat *st, const char *path) {
  if (2 * (nlinks + 1) > caplinks) {
    size_t cap = caplinks ? caplinks * 2 : 256;
    struct seen *more = xalloc(cap * sizeof *more);
    memset(more, 0, cap * sizeof *more);
    for (size_t i = 0; i < caplinks; i++) {
      if (!links[i].path) continue;
      size_t j = slot(links[i].dev, links[i].ino, cap);
      while (more[j].path) j = (j + 1) & (cap - 1);
      more[j] = links[i];
    }
    links = more, caplinks = cap;
  }
  size_t i = slot(st->st_dev, st->st_ino, caplinks);
  for (; links[i].path; i = (i + 1) & (caplinks - 1))
    if (links[i].ino == st->st_ino && links[i].dev == st->st_dev) return links[i].path;
  size_t len = strlen(path) + 1;
  links[i] = (struct seen){ st->st_dev, st->st_ino, xalloc(len) };
  memcpy(links[i].path, path, len);
  nlinks++;
  return NULL;
}

/* Where the walk failed: the first failure's path, kept as its frames return. */
static char pfailed[PATH_MAX];

static int pfail(const char *path) {
  int err = errno;
  if (!*pfailed) {
    struct buf b = BUF(pfailed);
    puts_(&b, path);
  }
  errno = err;
  return -1;
}

static int pwalk(int dirfd, const char *dir) {
  struct dirents d = { dirfd, 0, 0, { 0 } };
  for (const char *name; (name = next_entry(&d));) {
    char path[PATH_MAX];
    struct buf pb = BUF(path);
    if (*dir) puts_(&pb, dir), puts_(&pb, "/");
    puts_(&pb, name);
    if (overflowed(&pb)) { errno = ENAMETOOLONG; return pfail(dir); }
    struct stat st;
    /* an entry gone since it was listed (a running container removed it) is passed over, as Docker's export does */
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) { if (errno == ENOENT) continue; return pfail(path); }
    if (S_ISDIR(st.st_mode)) {
      int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
      if (fd < 0 && errno == ENOENT) continue;
      if (fd < 0) return pfail(path);
      if (pxattrs(fd, path) < 0) return keep_errno(pfail(path), fd); /* before the entry: a tar writer puts them in its header */
      precord(U_DIR, path, NULL, &st, 0);
      if (pwalk(fd, path) < 0) return keep_errno(pfail(path), fd);
      close(fd);
    } else if (S_ISREG(st.st_mode)) {
      /* opened before it is taken as the first path of its inode, which later links then name */
      /* O_NONBLOCK: a FIFO put in its place meanwhile must not hang the walk (it fails as a changed file) */
      int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
      if (fd < 0 && errno == ENOENT) continue;
      if (fd < 0) return pfail(path);
      struct stat opened;
      if (fstat(fd, &opened) < 0) return keep_errno(pfail(path), fd);
      if (opened.st_ino != st.st_ino || opened.st_dev != st.st_dev) {
        if (!plive || !S_ISREG(opened.st_mode)) { errno = ESTALE; return keep_errno(pfail(path), fd); }
        st = opened; /* made again meanwhile: the file there now */
      }
      const char *first = st.st_nlink > 1 ? plink(&st, path) : NULL;
      if (first) {
        close(fd);
        precord(U_HARDLINK, path, first, &st, 0);
        continue;
      }
      if (pxattrs(fd, path) < 0) return keep_errno(pfail(path), fd);
      precord(U_FILE, path, NULL, &st, (uint64_t)st.st_size);
      if (pdata(fd, &st) < 0) return keep_errno(pfail(path), fd);
      close(fd);
    } else if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t len = readlinkat(dirfd, name, target, sizeof target - 1);
      if (len < 0 && errno == ENOENT) continue;
      if (len < 0) return pfail(path);
      target[len] = 0;
      precord(U_SYMLINK, path, target, &st, 0);
    } else if (S_ISFIFO(st.st_mode)) {
      precord(U_FIFO, path, NULL, &st, 0);
    } /* devices (an overlay's whiteouts among them) and sockets are not carried */
  }
  return errno ? pfail(dir) : 0;
}

/* The mount at root alone (a running container's root, in its mount
 * namespace): a detached copy of it without the mounts on it (/proc, /dev,
 * volumes, the /etc/hosts it was given), read through the container's own
 * overlay, not a second one (the kernel warns about that: its upper layer
 * would be in use by two mounts). */
static int pack_mount(const char *root) {
  int tree = open_tree(AT_FDCWD, root, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) return -1;
  return keep_errno(openat(tree, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0), tree); /* open_tree gives an O_PATH fd */
}

static __attribute__((noreturn)) void do_pack(const char *root, int live, int mount_alone) {
  plive = live;
  int fd = mount_alone ? pack_mount(root) : open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  /* mounts locked on it (pid 1 made a user and a mount namespace of its own, unshare -U -m), or no open_tree (Linux < 5.2) */
  if (fd < 0 && mount_alone) _exit(STAGE_UNREAD);
  if (fd < 0 || pwalk(fd, "") < 0) {
    precord(U_FAIL, pfailed, NULL, NULL, (uint64_t)errno);
    pflush();
    _exit(1);
  }
  precord(U_END, "", NULL, NULL, 0);
  pflush();
  _exit(0);
}

/*
 * OP_MERGE: copy one layer (overlayfs's on-disk format) over a directory as
 * an overlay would show the two: a whiteout (a 0:0 character device)
 * removes what is below, an opaque directory replaces it, anything else
 * replaces what is at its path. Owners, modes, times and xattrs are kept
 * (overlayfs's own user.overlay.* ones aside); hard links become copies.
 * Run inside the user namespace, like OP_UNPACK, so owners stay the
 * container's ids; neither side's symlinks are ever followed.
 */
static int mxattrs(int from, int to) {
  static char names[XATTR_MAX], value[XATTR_MAX]; /* as pxattrs: the kernel's largest, and no recursion */
  ssize_t n = flistxattr(from, names, sizeof names);
  if (n < 0) return errno == EOPNOTSUPP ? 0 : -1;
  for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1) {
    const char *name = names + off;
    if (!strncmp_(name, "user.overlay.", 13)) continue;
    ssize_t len = fgetxattr(from, name, value, sizeof value);
    if (len < 0 || fsetxattr(to, name, value, (size_t)len, 0) < 0) return -1;
  }
  return 0;
}

/* Owner, then mode (chown clears setuid), xattrs and times: what fd needs from st. */
static int mmeta(int from, int to, const struct stat *st) {
  struct timespec_ t[2] = { { (long)st->st_atime, (long)st->st_atime_nsec }, { (long)st->st_mtime, (long)st->st_mtime_nsec } };
  if (fchown(to, st->st_uid, st->st_gid) < 0 || fchmod(to, st->st_mode & 07777) < 0 || mxattrs(from, to) < 0) return -1;
  return utimensat(to, NULL, t, 0);
}

static int mcopy(int from, int to, uint64_t size) {
  while (size > 0) {
    ssize_t n = copy_file_range(from, NULL, to, NULL, size > (1u << 30) ? (1u << 30) : (size_t)size, 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) { /* across file systems, older kernels */
      char buf[65536];
      n = read(from, buf, sizeof buf);
      if (n > 0) write_all(to, buf, (size_t)n);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -1 : 0;
    size -= (uint64_t)n;
  }
  return 0;
}

static int mwalk(int sfd, int dfd) {
  struct dirents d = { sfd, 0, 0, { 0 } };
  for (const char *name; (name = next_entry(&d));) {
    struct stat st, dst;
    if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return -1;
    int exists = fstatat(dfd, name, &dst, AT_SYMLINK_NOFOLLOW) == 0;
    if (S_ISCHR(st.st_mode) && st.st_rdev == 0) { /* a whiteout */
      if (rm_at(dfd, name) < 0) return -1;
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      int s2 = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0), d2;
      if (s2 < 0) return -1;
      char v[2];
      int opaque = fgetxattr(s2, "user.overlay.opaque", v, sizeof v) == 1 && v[0] == 'y';
      if (exists && (!S_ISDIR(dst.st_mode) || opaque)) {
        if (rm_at(dfd, name) < 0) return keep_errno(-1, s2);
        exists = 0;
      }
      if (!exists && mkdirat(dfd, name, 0700) < 0) return keep_errno(-1, s2);
      if ((d2 = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0)) < 0) return keep_errno(-1, s2);
      int rc = mwalk(s2, d2) < 0 || mmeta(s2, d2, &st) < 0 ? -1 : 0; /* times after the children */
      keep_errno(0, s2);
      if (keep_errno(rc, d2) < 0) return -1;
      continue;
    }
    if (exists && rm_at(dfd, name) < 0) return -1;
    if (S_ISREG(st.st_mode)) {
      int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0), out;
      if (in < 0) return -1;
      if ((out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) return keep_errno(-1, in);
      int rc = mcopy(in, out, (uint64_t)st.st_size) < 0 || mmeta(in, out, &st) < 0 ? -1 : 0;
      keep_errno(0, in);
      if (keep_errno(rc, out) < 0) return -1;
    } else if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t len = readlinkat(sfd, name, target, sizeof target - 1);
      if (len < 0) return -1;
      target[len] = 0;
      struct timespec_ t[2] = { { (long)st.st_atime, (long)st.st_atime_nsec }, { (long)st.st_mtime, (long)st.st_mtime_nsec } };
      if (symlinkat(target, dfd, name) < 0 || fchownat(dfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
          utimensat(dfd, name, t, AT_SYMLINK_NOFOLLOW) < 0)
        return -1;
    } else if (S_ISFIFO(st.st_mode)) {
      if (mknodat(dfd, name, S_IFIFO | 0600, 0) < 0 || fchownat(dfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
          fchmodat(dfd, name, st.st_mode & 07777) < 0)
        return -1;
    } /* devices and sockets: an unprivileged user cannot make them, and images keep none */
  }
  return errno ? -1 : 0;
}

static int do_merge(const char *layer, const char *dir) {
  umask(0);
  int s = open(layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC), d;
  if (s < 0) return -1;
  if ((d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) return keep_errno(-1, s);
  int rc = mwalk(s, d);
  keep_errno(0, s);
  return keep_errno(rc, d);
}
