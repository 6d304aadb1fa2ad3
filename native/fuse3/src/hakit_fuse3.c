/*
 * hakit-fuse3: a small N-API binding to libfuse3's path-based (high-level) API, made for the
 * rfs (src/adapters/fuse). Why it exists (issue 4, docs/replication.md): fuse-native 2.2.6
 * (libfuse2) caps writes at 128 KiB, does not give the caller's uid/gid, carries times in
 * milliseconds with UTIME_NOW lost, and has no xattr, fallocate or rename flags.
 *
 * How a call travels:
 *   kernel -> a libfuse worker thread (fuse_loop_mt) -> one of the op_* functions below, which
 *   fills a req_t on its own stack, queues it on a thread-safe function and waits on the req's
 *   semaphore -> call_js() on the Node main thread calls ops[name](...args, token) -> the JS
 *   code calls reply(token, result, value) (now or later) -> js_reply() writes the result (and
 *   value) into the req and posts the semaphore -> the worker returns to libfuse, which answers the
 *   kernel.
 * So the JS side sees every call in the order libfuse hands them out, and may answer them in
 * any order; buffers passed to JS (read/write) are only valid until the reply.
 *
 * No writeback cache (it would acknowledge a write before the rfs saw it: promise 2), writes up
 * to 1 MiB per call (max_write, FUSE_MAX_PAGES), inode numbers of the underlying files (use_ino).
 *
 * Exports:
 *   mount(mountpoint, args[], ops, onEvent, root) -> handle   (throws on failure)
 *       root: the underlying directory as /proc/self/fd/N; getxattr/listxattr are served on
 *       the worker thread from it (reads, no JS); every other op goes to ops[name].
 *       onEvent('ready') once the kernel's INIT is answered; onEvent('exit', code) when the loop
 *       has ended (after an unmount) and every call was answered.
 *   exit(handle)       ends the loop of a mount that was lazily unmounted (busy)
 *   reply(token, result, value)   answers the call `token` (the last argument of every op)
 *   lgetxattr(path, name) -> Buffer | -errno      llistxattr(path) -> Buffer | -errno
 *   lsetxattr(path, name, value, flags) -> 0 | -errno    lremovexattr(path, name) -> 0 | -errno
 *   fallocate(fd, mode, offset, length) -> 0 | -errno
 *   renameat2(from, to, flags) -> 0 | -errno
 *   mknod(path, mode, dev) -> 0 | -errno
 */
#define FUSE_USE_VERSION 312
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fuse.h>
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_WRITE (1024 * 1024)
#define WAKE_SIGNAL (SIGRTMIN + 3)

enum op {
  OP_INIT, OP_EXIT,
  OP_GETATTR, OP_FGETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR, OP_UNLINK, OP_RMDIR, OP_SYMLINK,
  OP_RENAME, OP_LINK, OP_CHMOD, OP_CHOWN, OP_TRUNCATE, OP_FTRUNCATE, OP_OPEN, OP_READ, OP_WRITE,
  OP_STATFS, OP_RELEASE, OP_FSYNC, OP_SETXATTR, OP_REMOVEXATTR,
  OP_READDIR, OP_FSYNCDIR, OP_ACCESS, OP_CREATE, OP_UTIMENS, OP_FALLOCATE,
  OP_COUNT
};

static const char *const OP_NAMES[OP_COUNT] = {
  "init", "exit",
  "getattr", "fgetattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink",
  "rename", "link", "chmod", "chown", "truncate", "ftruncate", "open", "read", "write",
  "statfs", "release", "fsync", "setxattr", "removexattr",
  "readdir", "fsyncdir", "access", "create", "utimens", "fallocate",
};

typedef struct mnt {
  pthread_mutex_t lock; /* guards fuse against exit() while the loop thread destroys it */
  struct fuse *fuse;
  struct fuse_args args; /* owned by the mount for its whole life */
  pthread_t thread;
  int thread_started;
  napi_threadsafe_function tsfn;
  napi_ref ops;      /* the JS object of op functions */
  napi_ref on_event; /* onEvent(type, code) */
  char root[64];     /* the underlying directory (/proc/self/fd/N), for the calls served in C */
  int loop_result;
  int loop_done;     /* set on the main thread when the exit event ran */
  int js_gone;       /* the JS handle was collected */
} mnt_t;

/* One call from the kernel, on its worker thread's stack until the reply. */
typedef struct req {
  int op;
  const char *path;
  const char *path2;
  const char *name;      /* xattr name */
  uint64_t fh;
  int64_t a, b, c, d;    /* numeric arguments, per op */
  uid_t uid;
  gid_t gid;
  const char *in;        /* write data, xattr value */
  char *out;             /* read buffer, readlink target, xattr value/list */
  size_t size;
  struct stat *st;
  struct statvfs *stv;
  void *dirbuf;
  fuse_fill_dir_t filler;
  double times[2];
  int result;
  uint64_t out_fh;
  sem_t sem;
} req_t;

/*
 * Requests waiting for their JS reply, by token (main thread only: slots are taken in call_js
 * and given back in js_reply). A token is slot index + 65536 * generation, so a second reply,
 * or one for a slot reused since, finds no request and is ignored.
 */
#define SLOT_BITS 16
typedef struct slot {
  req_t *req;
  uint32_t gen;
} slot_t;
static slot_t *slots = NULL;
static uint32_t nslots = 0;
static uint32_t *free_slots = NULL;
static uint32_t nfree = 0;

static double take_slot(req_t *r) {
  if (nfree == 0) {
    uint32_t grow = nslots == 0 ? 64 : nslots;
    if (nslots + grow > (1u << SLOT_BITS)) return -1;
    slot_t *ns = realloc(slots, (nslots + grow) * sizeof *ns);
    if (ns == NULL) return -1;
    slots = ns;
    uint32_t *nf = realloc(free_slots, (nslots + grow) * sizeof *nf);
    if (nf == NULL) return -1;
    free_slots = nf;
    for (uint32_t i = 0; i < grow; i++) {
      slots[nslots + i].req = NULL;
      slots[nslots + i].gen = 0;
      free_slots[nfree++] = nslots + grow - 1 - i;
    }
    nslots += grow;
  }
  uint32_t i = free_slots[--nfree];
  slots[i].req = r;
  slots[i].gen = (slots[i].gen + 1) & 0xfffff;
  return (double)i + (double)slots[i].gen * (double)(1u << SLOT_BITS);
}

/* The request of `token` (and its slot freed), or NULL when it was answered already. */
static req_t *give_slot(double token) {
  if (!(token >= 0)) return NULL;
  uint64_t t = (uint64_t)token;
  uint32_t i = (uint32_t)(t & ((1u << SLOT_BITS) - 1));
  uint32_t gen = (uint32_t)(t >> SLOT_BITS);
  if (i >= nslots || slots[i].req == NULL || slots[i].gen != gen) return NULL;
  req_t *r = slots[i].req;
  slots[i].req = NULL;
  free_slots[nfree++] = i;
  return r;
}

static mnt_t *current_mnt(void) {
  return (mnt_t *)fuse_get_context()->private_data;
}

/* Queues the request for the JS thread and waits for its reply. */
static int dispatch(req_t *r) {
  mnt_t *m = current_mnt();
  sem_init(&r->sem, 0, 0);
  if (napi_call_threadsafe_function(m->tsfn, r, napi_tsfn_blocking) != napi_ok) {
    sem_destroy(&r->sem);
    return -EIO;
  }
  while (sem_wait(&r->sem) != 0 && errno == EINTR) {
  }
  sem_destroy(&r->sem);
  return r->result;
}

#define NEW_REQ(OP) req_t r; memset(&r, 0, sizeof r); r.op = (OP)

static void set_caller(req_t *r) {
  struct fuse_context *ctx = fuse_get_context();
  r->uid = ctx->uid;
  r->gid = ctx->gid;
}

/* ---------- libfuse operations (worker threads) ---------- */

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  mnt_t *m = current_mnt();
  cfg->use_ino = 1;
  cfg->nullpath_ok = 0;
  cfg->hard_remove = 0;
  conn->max_write = MAX_WRITE;
  conn->max_readahead = MAX_WRITE;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  /* The JS side gets the event; nothing waits for an answer. */
  static req_t init_req = { .op = OP_INIT };
  napi_call_threadsafe_function(m->tsfn, &init_req, napi_tsfn_nonblocking);
  return m;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  NEW_REQ(fi != NULL ? OP_FGETATTR : OP_GETATTR);
  r.path = path;
  r.st = st;
  if (fi != NULL) r.fh = fi->fh;
  return dispatch(&r);
}

static int op_readlink(const char *path, char *buf, size_t size) {
  NEW_REQ(OP_READLINK);
  r.path = path;
  r.out = buf;
  r.size = size;
  return dispatch(&r);
}

static int op_mknod(const char *path, mode_t mode, dev_t rdev) {
  NEW_REQ(OP_MKNOD);
  r.path = path;
  r.a = mode;
  r.b = (int64_t)rdev;
  set_caller(&r);
  return dispatch(&r);
}

static int op_mkdir(const char *path, mode_t mode) {
  NEW_REQ(OP_MKDIR);
  r.path = path;
  r.a = mode;
  set_caller(&r);
  return dispatch(&r);
}

static int op_unlink(const char *path) {
  NEW_REQ(OP_UNLINK);
  r.path = path;
  return dispatch(&r);
}

static int op_rmdir(const char *path) {
  NEW_REQ(OP_RMDIR);
  r.path = path;
  return dispatch(&r);
}

static int op_symlink(const char *target, const char *path) {
  NEW_REQ(OP_SYMLINK);
  r.path = target;
  r.path2 = path;
  set_caller(&r);
  return dispatch(&r);
}

static int op_rename(const char *from, const char *to, unsigned int flags) {
  NEW_REQ(OP_RENAME);
  r.path = from;
  r.path2 = to;
  r.a = flags;
  return dispatch(&r);
}

static int op_link(const char *from, const char *to) {
  NEW_REQ(OP_LINK);
  r.path = from;
  r.path2 = to;
  return dispatch(&r);
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
  NEW_REQ(OP_CHMOD);
  r.path = path;
  r.a = mode;
  return dispatch(&r);
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi) {
  NEW_REQ(OP_CHOWN);
  r.path = path;
  r.a = uid;
  r.b = gid;
  return dispatch(&r);
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
  NEW_REQ(fi != NULL ? OP_FTRUNCATE : OP_TRUNCATE);
  r.path = path;
  r.a = size;
  if (fi != NULL) r.fh = fi->fh;
  return dispatch(&r);
}

static int op_open(const char *path, struct fuse_file_info *fi) {
  NEW_REQ(OP_OPEN);
  r.path = path;
  r.a = fi->flags;
  int res = dispatch(&r);
  if (res >= 0) fi->fh = r.out_fh;
  return res < 0 ? res : 0;
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
  NEW_REQ(OP_CREATE);
  r.path = path;
  r.a = mode;
  r.b = fi->flags;
  set_caller(&r);
  int res = dispatch(&r);
  if (res >= 0) fi->fh = r.out_fh;
  return res < 0 ? res : 0;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW_REQ(OP_READ);
  r.path = path;
  r.fh = fi->fh;
  r.out = buf;
  r.size = size;
  r.a = off;
  return dispatch(&r);
}

static int op_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW_REQ(OP_WRITE);
  r.path = path;
  r.fh = fi->fh;
  r.in = buf;
  r.size = size;
  r.a = off;
  return dispatch(&r);
}

static int op_statfs(const char *path, struct statvfs *stv) {
  NEW_REQ(OP_STATFS);
  r.path = path;
  r.stv = stv;
  return dispatch(&r);
}

static int op_flush(const char *path, struct fuse_file_info *fi) {
  return 0;
}

static int op_release(const char *path, struct fuse_file_info *fi) {
  NEW_REQ(OP_RELEASE);
  r.path = path;
  r.fh = fi->fh;
  return dispatch(&r);
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  NEW_REQ(OP_FSYNC);
  r.path = path;
  r.a = datasync;
  r.fh = fi != NULL ? fi->fh : 0;
  return dispatch(&r);
}

static int op_setxattr(const char *path, const char *name, const char *value, size_t size, int flags) {
  NEW_REQ(OP_SETXATTR);
  r.path = path;
  r.name = name;
  r.in = value;
  r.size = size;
  r.a = flags;
  return dispatch(&r);
}

/* The underlying path of `path` in `out` (for calls served here, without the JS thread). */
static int under(const mnt_t *m, const char *path, char *out, size_t size) {
  int n = snprintf(out, size, "%s%s", m->root, path);
  return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/*
 * getxattr and listxattr read the underlying entry right here, on libfuse's thread: the kernel
 * asks for security.capability before every write (file_remove_privs), and a trip to the JS
 * thread for that would double the cost of a small write. Reads need no order with the
 * mutating calls (those go through JS).
 */
static int op_getxattr(const char *path, const char *name, char *value, size_t size) {
  char p[PATH_MAX + 64];
  int e = under(current_mnt(), path, p, sizeof p);
  if (e != 0) return e;
  ssize_t n = lgetxattr(p, name, value, size);
  return n < 0 ? -errno : (int)n;
}

static int op_listxattr(const char *path, char *list, size_t size) {
  char p[PATH_MAX + 64];
  int e = under(current_mnt(), path, p, sizeof p);
  if (e != 0) return e;
  ssize_t n = llistxattr(p, list, size);
  return n < 0 ? -errno : (int)n;
}

static int op_removexattr(const char *path, const char *name) {
  NEW_REQ(OP_REMOVEXATTR);
  r.path = path;
  r.name = name;
  return dispatch(&r);
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
  NEW_REQ(OP_READDIR);
  r.path = path;
  r.dirbuf = buf;
  r.filler = filler;
  return dispatch(&r);
}

static int op_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi) {
  NEW_REQ(OP_FSYNCDIR);
  r.path = path;
  r.a = datasync;
  return dispatch(&r);
}

static int op_access(const char *path, int mask) {
  NEW_REQ(OP_ACCESS);
  r.path = path;
  r.a = mask;
  return dispatch(&r);
}

/* Times in ms since the epoch; -1: now (UTIME_NOW), -2: leave as is (UTIME_OMIT). */
static double time_ms(const struct timespec *t) {
  if (t->tv_nsec == UTIME_NOW) return -1;
  if (t->tv_nsec == UTIME_OMIT) return -2;
  return (double)t->tv_sec * 1000.0 + (double)t->tv_nsec / 1e6;
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
  NEW_REQ(OP_UTIMENS);
  r.path = path;
  if (tv == NULL) {
    r.times[0] = -1;
    r.times[1] = -1;
  } else {
    r.times[0] = time_ms(&tv[0]);
    r.times[1] = time_ms(&tv[1]);
  }
  return dispatch(&r);
}

static int op_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi) {
  NEW_REQ(OP_FALLOCATE);
  r.path = path;
  r.fh = fi != NULL ? fi->fh : 0;
  r.a = mode;
  r.b = off;
  r.c = len;
  return dispatch(&r);
}

static const struct fuse_operations OPERATIONS = {
  .init = op_init,
  .getattr = op_getattr,
  .readlink = op_readlink,
  .mknod = op_mknod,
  .mkdir = op_mkdir,
  .unlink = op_unlink,
  .rmdir = op_rmdir,
  .symlink = op_symlink,
  .rename = op_rename,
  .link = op_link,
  .chmod = op_chmod,
  .chown = op_chown,
  .truncate = op_truncate,
  .open = op_open,
  .read = op_read,
  .write = op_write,
  .statfs = op_statfs,
  .flush = op_flush,
  .release = op_release,
  .fsync = op_fsync,
  .setxattr = op_setxattr,
  .getxattr = op_getxattr,
  .listxattr = op_listxattr,
  .removexattr = op_removexattr,
  .readdir = op_readdir,
  .fsyncdir = op_fsyncdir,
  .access = op_access,
  .create = op_create,
  .utimens = op_utimens,
  .fallocate = op_fallocate,
};

/* ---------- the JS side (main thread) ---------- */

#define CHECK(call)                                                  \
  do {                                                               \
    if ((call) != napi_ok) {                                         \
      napi_throw_error(env, "HAKIT_E_FUSE3", "N-API call failed: " #call); \
      return NULL;                                                   \
    }                                                                \
  } while (0)

static double get_num(napi_env env, napi_value obj, const char *key) {
  napi_value v;
  double d = 0;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return 0;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  return d;
}

static void ms_to_timespec(double ms, struct timespec *t) {
  double s = ms / 1000.0;
  t->tv_sec = (time_t)(s < 0 ? s - 1 : s);
  if (s < 0 && (double)(t->tv_sec + 1) == s) t->tv_sec = (time_t)s;
  double ns = (ms - (double)t->tv_sec * 1000.0) * 1e6;
  if (ns < 0) ns = 0;
  if (ns > 999999999) ns = 999999999;
  t->tv_nsec = (long)ns;
}

static void fill_stat(napi_env env, napi_value o, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_mode = (mode_t)get_num(env, o, "mode");
  st->st_uid = (uid_t)get_num(env, o, "uid");
  st->st_gid = (gid_t)get_num(env, o, "gid");
  st->st_size = (off_t)get_num(env, o, "size");
  st->st_dev = (dev_t)get_num(env, o, "dev");
  st->st_nlink = (nlink_t)get_num(env, o, "nlink");
  st->st_ino = (ino_t)get_num(env, o, "ino");
  st->st_rdev = (dev_t)get_num(env, o, "rdev");
  st->st_blksize = (blksize_t)get_num(env, o, "blksize");
  st->st_blocks = (blkcnt_t)get_num(env, o, "blocks");
  ms_to_timespec(get_num(env, o, "atime"), &st->st_atim);
  ms_to_timespec(get_num(env, o, "mtime"), &st->st_mtim);
  ms_to_timespec(get_num(env, o, "ctime"), &st->st_ctim);
}

static void fill_statvfs(napi_env env, napi_value o, struct statvfs *s) {
  memset(s, 0, sizeof *s);
  s->f_bsize = (unsigned long)get_num(env, o, "bsize");
  s->f_frsize = (unsigned long)get_num(env, o, "frsize");
  s->f_blocks = (fsblkcnt_t)get_num(env, o, "blocks");
  s->f_bfree = (fsblkcnt_t)get_num(env, o, "bfree");
  s->f_bavail = (fsblkcnt_t)get_num(env, o, "bavail");
  s->f_files = (fsfilcnt_t)get_num(env, o, "files");
  s->f_ffree = (fsfilcnt_t)get_num(env, o, "ffree");
  s->f_favail = (fsfilcnt_t)get_num(env, o, "favail");
  s->f_fsid = (unsigned long)get_num(env, o, "fsid");
  s->f_flag = (unsigned long)get_num(env, o, "flag");
  s->f_namemax = (unsigned long)get_num(env, o, "namemax");
}

/* reply(token, result, value): result < 0 is -errno; value per op (stat, fd, names, ...). */
static napi_value js_reply(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  double token = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  if (napi_get_value_double(env, argv[0], &token) != napi_ok) return NULL;
  req_t *r = give_slot(token);
  if (r == NULL) return NULL; /* answered already */
  int32_t res = -EIO;
  if (argc >= 2) {
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    if (t == napi_number) napi_get_value_int32(env, argv[1], &res);
  }
  napi_value v = argc >= 3 ? argv[2] : NULL;
  napi_valuetype vt = napi_undefined;
  if (v != NULL) napi_typeof(env, v, &vt);
  if (res >= 0) {
    switch (r->op) {
      case OP_GETATTR:
      case OP_FGETATTR:
        if (vt != napi_object) { res = -EIO; break; }
        fill_stat(env, v, r->st);
        res = 0;
        break;
      case OP_STATFS:
        if (vt != napi_object) { res = -EIO; break; }
        fill_statvfs(env, v, r->stv);
        res = 0;
        break;
      case OP_READLINK: {
        size_t n = 0;
        if (vt != napi_string || r->size == 0) { res = -EIO; break; }
        napi_get_value_string_utf8(env, v, r->out, r->size, &n);
        res = 0;
        break;
      }
      case OP_OPEN:
      case OP_CREATE: {
        double fd = -1;
        if (vt != napi_number || napi_get_value_double(env, v, &fd) != napi_ok || fd < 0) { res = -EIO; break; }
        r->out_fh = (uint64_t)fd;
        res = 0;
        break;
      }
      case OP_READDIR: {
        bool isarr = false;
        napi_is_array(env, v, &isarr);
        if (!isarr) { res = -EIO; break; }
        uint32_t n = 0;
        napi_get_array_length(env, v, &n);
        char name[4096];
        for (uint32_t i = 0; i < n; i++) {
          napi_value e;
          size_t len = 0;
          if (napi_get_element(env, v, i, &e) != napi_ok) continue;
          if (napi_get_value_string_utf8(env, e, name, sizeof name, &len) != napi_ok) continue;
          if (r->filler(r->dirbuf, name, NULL, 0, 0) != 0) break;
        }
        res = 0;
        break;
      }
      default:
        break;
    }
  }
  r->result = res;
  sem_post(&r->sem);
  return NULL;
}

static napi_value str(napi_env env, const char *s) {
  napi_value v;
  if (s == NULL) {
    napi_get_undefined(env, &v);
    return v;
  }
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

static void maybe_free(mnt_t *m) {
  if (m->loop_done && m->js_gone) free(m);
}

/* Runs on the main thread for every queued request (env NULL: the function is being torn down). */
static void call_js(napi_env env, napi_value unused, void *context, void *data) {
  mnt_t *m = (mnt_t *)context;
  req_t *r = (req_t *)data;
  if (r->op == OP_INIT || r->op == OP_EXIT) {
    if (env == NULL) return;
    napi_value cb, global, argv[2];
    if (napi_get_reference_value(env, m->on_event, &cb) != napi_ok) return;
    napi_get_global(env, &global);
    argv[0] = str(env, r->op == OP_INIT ? "ready" : "exit");
    argv[1] = num(env, r->op == OP_EXIT ? m->loop_result : 0);
    if (r->op == OP_EXIT) {
      free(r);
      m->loop_done = 1;
    }
    napi_call_function(env, global, cb, 2, argv, NULL);
    return;
  }
  if (env == NULL) {
    r->result = -EIO;
    sem_post(&r->sem);
    return;
  }
  napi_value ops, fn;
  napi_valuetype t = napi_undefined;
  if (napi_get_reference_value(env, m->ops, &ops) == napi_ok &&
      napi_get_named_property(env, ops, OP_NAMES[r->op], &fn) == napi_ok) {
    napi_typeof(env, fn, &t);
  }
  if (t != napi_function && r->op == OP_FGETATTR) {
    r->op = OP_GETATTR; /* no fgetattr: answer by path */
    napi_get_named_property(env, ops, OP_NAMES[r->op], &fn);
    napi_typeof(env, fn, &t);
  }
  if (t != napi_function) {
    r->result = -ENOSYS;
    sem_post(&r->sem);
    return;
  }
  double token = take_slot(r);
  if (token < 0) {
    r->result = -ENOMEM;
    sem_post(&r->sem);
    return;
  }

  napi_value argv[8];
  size_t argc = 0;
  napi_value buf;
  switch (r->op) {
    case OP_GETATTR: case OP_READLINK: case OP_UNLINK: case OP_RMDIR: case OP_STATFS:
      argv[argc++] = str(env, r->path);
      break;
    case OP_FGETATTR: case OP_RELEASE:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->fh);
      break;
    case OP_MKNOD:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->a);
      argv[argc++] = num(env, (double)r->b);
      argv[argc++] = num(env, r->uid);
      argv[argc++] = num(env, r->gid);
      break;
    case OP_MKDIR:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->a);
      argv[argc++] = num(env, r->uid);
      argv[argc++] = num(env, r->gid);
      break;
    case OP_SYMLINK:
      argv[argc++] = str(env, r->path);  /* target */
      argv[argc++] = str(env, r->path2); /* the new link */
      argv[argc++] = num(env, r->uid);
      argv[argc++] = num(env, r->gid);
      break;
    case OP_RENAME:
      argv[argc++] = str(env, r->path);
      argv[argc++] = str(env, r->path2);
      argv[argc++] = num(env, (double)r->a);
      break;
    case OP_LINK:
      argv[argc++] = str(env, r->path);
      argv[argc++] = str(env, r->path2);
      break;
    case OP_CHMOD: case OP_TRUNCATE: case OP_ACCESS:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->a);
      break;
    case OP_CHOWN:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)(uint32_t)r->a);
      argv[argc++] = num(env, (double)(uint32_t)r->b);
      break;
    case OP_FTRUNCATE:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->fh);
      argv[argc++] = num(env, (double)r->a);
      break;
    case OP_OPEN:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->a);
      break;
    case OP_CREATE:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->a);
      argv[argc++] = num(env, r->uid);
      argv[argc++] = num(env, r->gid);
      argv[argc++] = num(env, (double)r->b);
      break;
    case OP_READ:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->fh);
      napi_create_external_buffer(env, r->size, r->out, NULL, NULL, &buf);
      argv[argc++] = buf;
      argv[argc++] = num(env, (double)r->size);
      argv[argc++] = num(env, (double)r->a);
      break;
    case OP_WRITE:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->fh);
      napi_create_external_buffer(env, r->size, (void *)r->in, NULL, NULL, &buf);
      argv[argc++] = buf;
      argv[argc++] = num(env, (double)r->size);
      argv[argc++] = num(env, (double)r->a);
      break;
    case OP_FSYNC:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->a);
      argv[argc++] = num(env, (double)r->fh);
      break;
    case OP_FSYNCDIR:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->a);
      break;
    case OP_SETXATTR:
      argv[argc++] = str(env, r->path);
      argv[argc++] = str(env, r->name);
      napi_create_buffer_copy(env, r->size, r->in, NULL, &buf);
      argv[argc++] = buf;
      argv[argc++] = num(env, (double)r->a);
      break;
    case OP_REMOVEXATTR:
      argv[argc++] = str(env, r->path);
      argv[argc++] = str(env, r->name);
      break;
    case OP_READDIR:
      argv[argc++] = str(env, r->path);
      break;
    case OP_UTIMENS:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, r->times[0]);
      argv[argc++] = num(env, r->times[1]);
      break;
    case OP_FALLOCATE:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->fh);
      argv[argc++] = num(env, (double)r->a);
      argv[argc++] = num(env, (double)r->b);
      argv[argc++] = num(env, (double)r->c);
      break;
    default:
      argv[argc++] = str(env, r->path);
      break;
  }
  argv[argc++] = num(env, token);
  napi_value global, ret;
  napi_get_global(env, &global);
  if (napi_call_function(env, global, fn, argc, argv, &ret) != napi_ok) {
    /* The op threw: answer EIO (unless it replied first) and report the exception. */
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    if (give_slot(token) == r) {
      r->result = -EIO;
      sem_post(&r->sem);
    }
    napi_fatal_exception(env, err);
  }
}

static void wake_handler(int sig) {
  (void)sig;
}

static void *loop_thread(void *arg) {
  mnt_t *m = (mnt_t *)arg;
  /* Only this thread takes the wake signal (it interrupts fuse_loop_mt's wait on exit()). */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, WAKE_SIGNAL);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  fuse_loop_cfg_set_max_threads(cfg, 16);
  fuse_loop_cfg_set_idle_threads(cfg, 4);
  m->loop_result = fuse_loop_mt(m->fuse, cfg);
  fuse_loop_cfg_destroy(cfg);
  /* No fuse_unmount() here: the JS side unmounted already (fusermount -u or -uz), and after a
   * lazy unmount the path may show another mount (the data disk under it) that libfuse's
   * umount2(path) would take away. Closing /dev/fuse (fuse_destroy) ends the connection. */
  pthread_mutex_lock(&m->lock);
  fuse_destroy(m->fuse);
  m->fuse = NULL;
  pthread_mutex_unlock(&m->lock);
  fuse_opt_free_args(&m->args);
  req_t *done = calloc(1, sizeof *done);
  if (done != NULL) {
    done->op = OP_EXIT;
    napi_call_threadsafe_function(m->tsfn, done, napi_tsfn_blocking);
  }
  napi_release_threadsafe_function(m->tsfn, napi_tsfn_release);
  return NULL;
}

static void tsfn_finalize(napi_env env, void *data, void *hint) {
  mnt_t *m = (mnt_t *)hint;
  napi_delete_reference(env, m->ops);
  napi_delete_reference(env, m->on_event);
  m->loop_done = 1;
  maybe_free(m);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  mnt_t *m = (mnt_t *)data;
  m->js_gone = 1;
  maybe_free(m);
}

static int get_string(napi_env env, napi_value v, char *out, size_t size) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, out, size, &n) != napi_ok) return -1;
  if (n >= size - 1) return -1;
  return 0;
}

/* mount(mountpoint, args[], ops, onEvent, root) -> handle */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "mount(mountpoint, args, ops, onEvent, root)");
    return NULL;
  }
  char mountpoint[4096];
  if (get_string(env, argv[0], mountpoint, sizeof mountpoint) != 0) {
    napi_throw_type_error(env, NULL, "mountpoint must be a string shorter than 4096 bytes");
    return NULL;
  }
  uint32_t nargs = 0;
  CHECK(napi_get_array_length(env, argv[1], &nargs));
  if (nargs > 30) {
    napi_throw_range_error(env, NULL, "too many mount arguments");
    return NULL;
  }
  static char argbuf[32][1024];
  char *fargv[32];
  int fargc = 0;
  static const char prog[] = "hakit-rfs";
  snprintf(argbuf[0], sizeof argbuf[0], "%s", prog);
  fargv[fargc++] = argbuf[0];
  for (uint32_t i = 0; i < nargs; i++) {
    napi_value e;
    CHECK(napi_get_element(env, argv[1], i, &e));
    if (get_string(env, e, argbuf[fargc], sizeof argbuf[fargc]) != 0) {
      napi_throw_type_error(env, NULL, "mount arguments must be strings shorter than 1024 bytes");
      return NULL;
    }
    fargv[fargc] = argbuf[fargc];
    fargc++;
  }
  mnt_t *m = calloc(1, sizeof *m);
  if (m == NULL) {
    napi_throw_error(env, "HAKIT_E_FUSE3", "out of memory");
    return NULL;
  }
  pthread_mutex_init(&m->lock, NULL);
  if (get_string(env, argv[4], m->root, sizeof m->root) != 0) {
    pthread_mutex_destroy(&m->lock);
    free(m);
    napi_throw_type_error(env, NULL, "root must be a path shorter than 64 bytes (/proc/self/fd/N)");
    return NULL;
  }
  /* libfuse may rewrite the args and keep pointers into them: the mount owns a copy. */
  for (int i = 0; i < fargc; i++) fuse_opt_add_arg(&m->args, fargv[i]);
  m->fuse = fuse_new(&m->args, &OPERATIONS, sizeof OPERATIONS, m);
  if (m->fuse == NULL) {
    fuse_opt_free_args(&m->args);
    free(m);
    napi_throw_error(env, "HAKIT_E_FUSE3", "fuse_new failed (bad mount options?)");
    return NULL;
  }
  if (fuse_mount(m->fuse, mountpoint) != 0) {
    fuse_destroy(m->fuse);
    fuse_opt_free_args(&m->args);
    free(m);
    char msg[4200];
    snprintf(msg, sizeof msg, "fuse_mount failed on %s", mountpoint);
    napi_throw_error(env, "HAKIT_E_FUSE3", msg);
    return NULL;
  }
  CHECK(napi_create_reference(env, argv[2], 1, &m->ops));
  CHECK(napi_create_reference(env, argv[3], 1, &m->on_event));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "hakit-fuse3", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, m, tsfn_finalize, m, call_js, &m->tsfn));

  static int signal_ready = 0;
  if (!signal_ready) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wake_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the loop's sem_wait must return */
    sigaction(WAKE_SIGNAL, &sa, NULL);
    signal_ready = 1;
  }
  if (pthread_create(&m->thread, NULL, loop_thread, m) != 0) {
    fuse_unmount(m->fuse);
    fuse_destroy(m->fuse);
    napi_release_threadsafe_function(m->tsfn, napi_tsfn_abort);
    napi_throw_error(env, "HAKIT_E_FUSE3", "cannot start the FUSE loop thread");
    return NULL;
  }
  m->thread_started = 1;
  pthread_detach(m->thread);
  napi_value handle;
  CHECK(napi_create_external(env, m, handle_finalize, NULL, &handle));
  return handle;
}

/* exit(handle): ends the loop (a lazily unmounted, busy mount keeps serving until then). */
static napi_value js_exit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  mnt_t *m = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&m) != napi_ok || m == NULL) {
    napi_throw_type_error(env, NULL, "exit(handle)");
    return NULL;
  }
  pthread_mutex_lock(&m->lock);
  if (m->fuse != NULL) {
    fuse_exit(m->fuse);
    pthread_kill(m->thread, WAKE_SIGNAL);
  }
  pthread_mutex_unlock(&m->lock);
  return NULL;
}

/* ---------- synchronous helpers for what Node's fs lacks ---------- */

static napi_value errno_value(napi_env env, int e) {
  return num(env, -(double)e);
}

static int arg_path(napi_env env, napi_value v, char *out, size_t size) {
  if (get_string(env, v, out, size) != 0) {
    napi_throw_type_error(env, NULL, "expected a path string shorter than 4096 bytes");
    return -1;
  }
  return 0;
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[4096], name[256];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || arg_path(env, argv[0], path, sizeof path) || arg_path(env, argv[1], name, sizeof name)) return NULL;
  for (;;) {
    ssize_t n = lgetxattr(path, name, NULL, 0);
    if (n < 0) return errno_value(env, errno);
    void *data;
    napi_value buf;
    CHECK(napi_create_buffer(env, (size_t)n, &data, &buf));
    ssize_t got = n == 0 ? 0 : lgetxattr(path, name, data, (size_t)n);
    if (got < 0 && errno == ERANGE) continue; /* grew meanwhile */
    if (got < 0) return errno_value(env, errno);
    if (got == n) return buf;
    napi_value sub;
    CHECK(napi_create_buffer_copy(env, (size_t)got, data, NULL, &sub));
    return sub;
  }
}

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[4096];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || arg_path(env, argv[0], path, sizeof path)) return NULL;
  for (;;) {
    ssize_t n = llistxattr(path, NULL, 0);
    if (n < 0) return errno_value(env, errno);
    void *data;
    napi_value buf;
    CHECK(napi_create_buffer(env, (size_t)n, &data, &buf));
    ssize_t got = n == 0 ? 0 : llistxattr(path, data, (size_t)n);
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) return errno_value(env, errno);
    if (got == n) return buf;
    napi_value sub;
    CHECK(napi_create_buffer_copy(env, (size_t)got, data, NULL, &sub));
    return sub;
  }
}

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char path[4096], name[256];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || arg_path(env, argv[0], path, sizeof path) || arg_path(env, argv[1], name, sizeof name)) return NULL;
  void *data;
  size_t len;
  int32_t flags = 0;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "lsetxattr: value must be a Buffer");
    return NULL;
  }
  napi_get_value_int32(env, argv[3], &flags);
  if (lsetxattr(path, name, data, len, flags) != 0) return errno_value(env, errno);
  return num(env, 0);
}

static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[4096], name[256];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || arg_path(env, argv[0], path, sizeof path) || arg_path(env, argv[1], name, sizeof name)) return NULL;
  if (lremovexattr(path, name) != 0) return errno_value(env, errno);
  return num(env, 0);
}

static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1, mode = 0;
  int64_t off = 0, len = 0;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &mode) != napi_ok ||
      napi_get_value_int64(env, argv[2], &off) != napi_ok || napi_get_value_int64(env, argv[3], &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "fallocate(fd, mode, offset, length)");
    return NULL;
  }
  if (fallocate(fd, mode, off, len) != 0) return errno_value(env, errno);
  return num(env, 0);
}

static napi_value js_renameat2(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char from[4096], to[4096];
  uint32_t flags = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || arg_path(env, argv[0], from, sizeof from) || arg_path(env, argv[1], to, sizeof to)) return NULL;
  napi_get_value_uint32(env, argv[2], &flags);
  if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags) != 0) return errno_value(env, errno);
  return num(env, 0);
}

/* mknod(path, mode, dev): mknodat(2) relative to the cwd; 0 or -errno. The rfs makes FIFOs with
 * it in its own process (it forked mkfifo(1) before, blocking its event loop meanwhile). */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[4096];
  uint32_t mode = 0, dev = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || arg_path(env, argv[0], path, sizeof path)) return NULL;
  napi_get_value_uint32(env, argv[1], &mode);
  napi_get_value_uint32(env, argv[2], &dev);
  if (mknodat(AT_FDCWD, path, (mode_t)mode, (dev_t)dev) != 0) return errno_value(env, errno);
  return num(env, 0);
}

static napi_value init_module(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL },
    { "exit", NULL, js_exit, NULL, NULL, NULL, napi_default, NULL },
    { "reply", NULL, js_reply, NULL, NULL, NULL, napi_default, NULL },
    { "lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_default, NULL },
    { "llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_default, NULL },
    { "lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL },
    { "lremovexattr", NULL, js_lremovexattr, NULL, NULL, NULL, napi_default, NULL },
    { "fallocate", NULL, js_fallocate, NULL, NULL, NULL, napi_default, NULL },
    { "renameat2", NULL, js_renameat2, NULL, NULL, NULL, napi_default, NULL },
    { "mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value max;
  napi_create_uint32(env, MAX_WRITE, &max);
  napi_set_named_property(env, exports, "MAX_WRITE", max);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init_module)
