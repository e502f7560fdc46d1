/*
 * The C load generator of the kernel benchmark (bench/kernel.mjs compiles it
 * with `cc -O2` into a temporary directory; src/bench/kernel.ts runs it in the
 * lab's namespaces). Only libc. Its own user time is well under 1 µs per
 * setup or datagram where the node generator spends ~8.5 µs per datagram, so
 * the kernel's per-packet cost is not hidden behind the generator's
 * (BENCHMARKS.md, "Kernel", "With a C load generator").
 *
 *   loadgen tcp  --port P --seconds S --concurrency C (--dests FILE | --count N [--first K])
 *   loadgen udp  --port P --seconds S --concurrency B (--dests FILE | --count N [--first K])
 *   loadgen sink --port P
 *
 * Destinations: one address per line in FILE (IPv4 or IPv6), or the bench's
 * pattern: N addresses 2001:db8:H:L::1 for k = K .. K+N-1, k = H*65536 + L
 * (benchAddress in src/bench/kernel.ts). They are all visited in turn, by
 * a stride of about 0.618·N coprime to N: every stretch of the sequence is
 * spread over the whole list, so a run too short to visit all N (a slow
 * linear chain) still sees destinations from every part of it, not only the
 * first ones.
 *
 *  - tcp: C non-blocking connects in flight (one socket each, epoll); when one
 *    completes it is counted and closed with RST (SO_LINGER 0: no TIME_WAIT,
 *    so ephemeral ports never run out), and the next one starts. count =
 *    completed connection setups (SYN out through OUTPUT, SYN-ACK in, ACK out).
 *  - udp: one unconnected non-blocking socket, sendmmsg batches of B
 *    datagrams of 32 bytes, each to the next destination; count = datagrams
 *    the kernel accepted (past OUTPUT and handed to the device).
 *  - sink: listens on [::]:P (dual stack, backlog 4096), prints "ready", and
 *    accepts and closes until SIGTERM/SIGINT, then prints
 *    {"accepted":N}. What the world namespace runs for tcp.
 *
 * tcp and udp print one JSON line:
 *   {"mode","count","errors","elapsedMs","cpuUs","userUs","dests"}
 * cpuUs: this process's user + system CPU time over the run, which includes
 * the kernel's work done in its context (the veth path's softirq); userUs:
 * the user-space part alone, the generator's own cost.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 1024
#define MAX_CONC 65536

static void die(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(2);
}

static void usage(void) {
  die("usage: loadgen tcp|udp --port P --seconds S --concurrency C (--dests FILE | --count N [--first K]) | loadgen sink --port P");
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* This process's CPU time so far, µs: user + system, and user alone. */
static void cpu_us(long *total, long *user) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  *user = u.ru_utime.tv_sec * 1000000L + u.ru_utime.tv_usec;
  *total = *user + u.ru_stime.tv_sec * 1000000L + u.ru_stime.tv_usec;
}

/* A strict non-negative integer argument, at most max. */
static long number(const char *name, const char *s, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > max) {
    fprintf(stderr, "loadgen: %s must be an integer 0..%ld, not \"%s\"\n", name, max, s);
    exit(2);
  }
  return v;
}

static struct sockaddr_storage *dests;
static socklen_t *dest_len;
static long ndests, stride;

static long gcd(long a, long b) {
  while (b) {
    long t = a % b;
    a = b, b = t;
  }
  return a;
}

/* The step through the destination list: ~0.618·N, coprime to N, so the sequence visits every destination once per N steps. */
static void set_stride(void) {
  stride = (long)(ndests * 0.6180339887);
  if (stride < 1) stride = 1;
  while (gcd(stride, ndests) != 1) stride++;
}

static int parse_dest(const char *text, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    *len = sizeof *a6;
    return 0;
  }
  if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    *len = sizeof *a4;
    return 0;
  }
  return -1;
}

static void alloc_dests(long n) {
  dests = calloc(n ? n : 1, sizeof *dests);
  dest_len = calloc(n ? n : 1, sizeof *dest_len);
  if (!dests || !dest_len) die("out of memory");
}

static void read_dests(const char *path, int port) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "loadgen: cannot read %s: %s\n", path, strerror(errno));
    exit(2);
  }
  long cap = 1024, n = 0;
  char line[256];
  alloc_dests(cap);
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, " \t\r\n")] = 0;
    if (!line[0]) continue;
    if (n == cap) {
      cap *= 2;
      dests = realloc(dests, cap * sizeof *dests);
      dest_len = realloc(dest_len, cap * sizeof *dest_len);
      if (!dests || !dest_len) die("out of memory");
    }
    if (parse_dest(line, port, &dests[n], &dest_len[n])) {
      fprintf(stderr, "loadgen: not an address in %s: \"%s\"\n", path, line);
      exit(2);
    }
    n++;
  }
  fclose(f);
  ndests = n;
}

/* Destination k of the bench's pattern: 2001:db8:H:L::1, k = H*65536 + L. */
static void pattern_dests(long count, long first, int port) {
  alloc_dests(count);
  for (long i = 0; i < count; i++) {
    unsigned long k = (unsigned long)(first + i);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&dests[i];
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    unsigned char *b = a->sin6_addr.s6_addr;
    b[0] = 0x20, b[1] = 0x01, b[2] = 0x0d, b[3] = 0xb8;
    b[4] = k >> 24, b[5] = k >> 16, b[6] = k >> 8, b[7] = k;
    b[15] = 1;
    dest_len[i] = sizeof *a;
  }
  ndests = count;
}

static long count, errors;

/*
 * Start a connect to the next destination; returns its socket, in flight, or
 * -1 once the deadline has passed. Connects that complete or fail at once are
 * counted here and the next one starts.
 */
static int start_connect(int ep, long *next, double deadline) {
  while (now_ms() < deadline) {
    struct sockaddr_storage *d = &dests[*next];
    socklen_t len = dest_len[*next];
    *next = (*next + stride) % ndests;
    int s = socket(d->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket() failed");
    struct linger lg = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (connect(s, (struct sockaddr *)d, len) == 0) {
      /* Completed at once (the veth path can run the whole handshake inside connect()). */
      count++;
      close(s);
      continue;
    }
    if (errno != EINPROGRESS) {
      errors++;
      close(s);
      continue;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = s};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev)) die("epoll_ctl failed");
    return s;
  }
  return -1;
}

static void run_tcp(double seconds, long conc) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1 failed");
  long next = 0, inflight = 0;
  double deadline = now_ms() + seconds * 1e3;
  for (long i = 0; i < conc; i++)
    if (start_connect(ep, &next, deadline) >= 0) inflight++;
  struct epoll_event evs[256];
  while (inflight > 0) {
    int n = epoll_wait(ep, evs, 256, 1000);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait failed");
    }
    int stop = now_ms() >= deadline;
    for (int i = 0; i < n; i++) {
      int s = evs[i].data.fd, err = 0;
      socklen_t el = sizeof err;
      getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
      if (err) errors++;
      else count++;
      close(s);
      inflight--;
      if (!stop && start_connect(ep, &next, deadline) >= 0) inflight++;
    }
    /* A connect that never completes would hold the run: the deadline plus 5 s ends it. */
    if (n == 0 && stop && now_ms() >= deadline + 5000) break;
  }
  close(ep);
}

static void run_udp(double seconds, long batch) {
  int s4 = -1, s6 = -1;
  for (long i = 0; i < ndests; i++) {
    if (dests[i].ss_family == AF_INET6 && s6 < 0) s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (dests[i].ss_family == AF_INET && s4 < 0) s4 = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (s4 >= 0 && s6 >= 0) die("udp: one family per destination list");
  int s = s6 >= 0 ? s6 : s4;
  if (s < 0) die("socket() failed");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLOUT, .data.fd = s};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev)) die("epoll setup failed");
  static char payload[32];
  memset(payload, 'x', sizeof payload);
  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iov;
  iov.iov_base = payload;
  iov.iov_len = sizeof payload;
  long next = 0;
  double deadline = now_ms() + seconds * 1e3;
  while (now_ms() < deadline) {
    for (long i = 0; i < batch; i++) {
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_name = &dests[next];
      msgs[i].msg_hdr.msg_namelen = dest_len[next];
      msgs[i].msg_hdr.msg_iov = &iov;
      msgs[i].msg_hdr.msg_iovlen = 1;
      next = (next + stride) % ndests;
    }
    int n = sendmmsg(s, msgs, batch, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == ENOBUFS) {
        if (errno == ENOBUFS) errors++;
        struct epoll_event out;
        epoll_wait(ep, &out, 1, 10);
        continue;
      }
      if (errno == EINTR) continue;
      /* EPERM (rejected by OUTPUT), ECONNREFUSED, ...: the first message failed. */
      errors++;
      continue;
    }
    count += n;
    /* A partial batch: the message after the last one sent failed; counted once, the rest are resent. */
    if (n < batch) errors++;
  }
  close(ep);
  close(s);
}

static volatile sig_atomic_t stopping;
static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static void run_sink(int port) {
  int s = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket() failed");
  int zero = 0, one = 1;
  setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT};
  if (bind(s, (struct sockaddr *)&a, sizeof a)) {
    fprintf(stderr, "loadgen: sink: cannot bind [::]:%d: %s\n", port, strerror(errno));
    exit(2);
  }
  if (listen(s, 4096)) die("listen failed");
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev)) die("epoll setup failed");
  printf("ready\n");
  fflush(stdout);
  long accepted = 0;
  while (!stopping) {
    struct epoll_event e;
    int n = epoll_wait(ep, &e, 1, 1000);
    if (n <= 0) continue;
    for (;;) {
      int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
      if (c < 0) break;
      accepted++;
      close(c);
    }
  }
  printf("{\"accepted\":%ld}\n", accepted);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1], *file = NULL;
  long port = -1, conc = 16, ndest = -1, first = 0;
  double seconds = 1;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(a, "--port")) port = number("--port", v, 65535);
    else if (!strcmp(a, "--concurrency")) conc = number("--concurrency", v, MAX_CONC);
    else if (!strcmp(a, "--count")) ndest = number("--count", v, 1L << 32);
    else if (!strcmp(a, "--first")) first = number("--first", v, 1L << 32);
    else if (!strcmp(a, "--dests")) file = v;
    else if (!strcmp(a, "--seconds")) {
      char *end;
      seconds = strtod(v, &end);
      if (end == v || *end || !(seconds > 0 && seconds <= 3600)) die("--seconds must be a number in (0, 3600]");
    } else usage();
  }
  if (port < 1) die("--port is required (1..65535)");
  if (!strcmp(mode, "sink")) {
    run_sink(port);
    return 0;
  }
  int tcp = !strcmp(mode, "tcp");
  if (!tcp && strcmp(mode, "udp")) usage();
  if (conc < 1) die("--concurrency must be at least 1");
  if (!tcp && conc > MAX_BATCH) die("udp: --concurrency (batch) is at most 1024");
  if (file && ndest >= 0) die("--dests and --count exclude each other");
  if (file) read_dests(file, port);
  else if (ndest > 0) {
    if (first + ndest > (1L << 32)) die("--first + --count exceeds the pattern's 2^32 addresses");
    pattern_dests(ndest, first, port);
  } else die("destinations: --dests FILE or --count N (> 0)");
  if (ndests == 0) die("no destinations");
  set_stride();
  signal(SIGPIPE, SIG_IGN);
  double t0 = now_ms();
  long c0, u0, c1, u1;
  cpu_us(&c0, &u0);
  if (tcp) run_tcp(seconds, conc);
  else run_udp(seconds, conc);
  double elapsed = now_ms() - t0;
  cpu_us(&c1, &u1);
  printf("{\"mode\":\"%s\",\"count\":%ld,\"errors\":%ld,\"elapsedMs\":%.3f,\"cpuUs\":%ld,\"userUs\":%ld,\"dests\":%ld}\n", mode, count, errors, elapsed, c1 - c0, u1 - u0, ndests);
  return 0;
}
