/*
 * The logging thread; see log_writer.h. Lines wait in a fixed ring of
 * slots (no allocation per line); the thread writes one at a time and may
 * block doing so, which is its whole point: nobody else waits for it.
 */
#include "log_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 256                 /* lines that may wait */
#define SLOT_TEXT 2048            /* log.c formats no longer lines */
#define WAIT_SLICE_MS 200         /* how often a blocked write looks at stop */
#define RECONNECT_MS 1000         /* syslog socket gone: try again this often */

struct slot {
	unsigned short len;
	unsigned short stamp_len;     /* syslog stamps lines itself: skipped */
	unsigned char level;
	char text[SLOT_TEXT];
};

enum state { NOT_STARTED, RUNNING, STOPPED };

static struct {
	pthread_mutex_t mu;
	pthread_cond_t wake;          /* a line was queued, or stop */
	pthread_cond_t drained;       /* the queue became empty, or the thread ended */
	enum state state;
	bool stop, ended;
	bool busy;                    /* the thread is writing a line it took */
	long long stop_deadline_ms;   /* a line still unwritten then is given up */
	struct slot *slots;
	unsigned head, count;
	uint64_t dropped_total;
	uint64_t dropped_unreported;  /* said by the next line written */
	pthread_t thread;
	/* The sink, owned by the thread once it runs (changed under mu). */
	bool syslog;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int fd;                       /* syslog socket, -1 while not connected */
	int err_fd;                   /* stderr as a loop may try it (see stderr_nonblocking) */
	long long next_connect_ms;
} W = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.drained = PTHREAD_COND_INITIALIZER,
	.fd = -1,
	.err_fd = -1,
};

/* What writing a line came to. */
enum outcome { WRITTEN, WOULD_BLOCK, FAILED };
#define NO_WAIT (-1LL)                /* deadline: a loop's call, never wait */

static const char *const level_names[] = {
	"debug", "info", "notice", "warning", "error"
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t log_writer_stamp(char *buf, size_t size, int level)
{
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(buf + n, size - n, ".%03ldZ %s: ", ts.tv_nsec / 1000000,
		     level_names[level]);
	return n + (r > 0 ? (size_t)r : 0);
}

/* ---------------------------------------------------------------- sink */

/* "/path" (unix datagram), or HOST:PORT / [V6]:PORT (UDP). */
static int sink_resolve(const char *address, struct sockaddr_storage *ss,
			socklen_t *len, char *err, size_t err_size)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *res;
	char host[256];
	const char *colon, *port;
	size_t hlen;
	int r;

	if (address == NULL || *address == '\0')
		address = "/dev/log";
	if (address[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		if (strlen(address) >= sizeof(un->sun_path)) {
			snprintf(err, err_size, "syslog socket path too long: %s", address);
			return -1;
		}
		memset(ss, 0, sizeof(*ss));
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, address);
		*len = sizeof(*un);
		return 0;
	}
	colon = strrchr(address, ':');
	if (colon == NULL || colon[1] == '\0') {
		snprintf(err, err_size, "syslog address '%s': want /path or host:port", address);
		return -1;
	}
	port = colon + 1;
	hlen = (size_t)(colon - address);
	if (hlen >= 2 && address[0] == '[' && address[hlen - 1] == ']') {
		address++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		snprintf(err, err_size, "syslog address: bad host");
		return -1;
	}
	memcpy(host, address, hlen);
	host[hlen] = '\0';
	/* Startup or reload of the configuration, before the line is used:
	 * the one lookup happens here, never for a line. */
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		snprintf(err, err_size, "syslog address '%s': %s", host, gai_strerror(r));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Connects the syslog socket if it is not; false while that fails. */
static bool sink_connect(void)
{
	int fd;

	if (W.fd >= 0)
		return true;
	if (now_ms() < W.next_connect_ms)
		return false;
	W.next_connect_ms = now_ms() + RECONNECT_MS;
	fd = socket(W.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&W.addr, W.addr_len) != 0) {
		close(fd);
		return false;
	}
	W.fd = fd;
	return true;
}

/* Waits until fd may be written, in slices so that a stop is noticed
 * (past deadline_ms, 0 = none, the line is given up). */
static bool wait_writable(int fd, long long deadline_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	if (deadline_ms == NO_WAIT)
		return false;
	for (;;) {
		if (poll(&p, 1, WAIT_SLICE_MS) > 0)
			return (p.revents & (POLLERR | POLLNVAL)) == 0 ||
			       (p.revents & POLLOUT);
		if (deadline_ms != 0 && now_ms() >= deadline_ms)
			return false;
	}
}

/* RFC 3164, as glibc's syslog() writes it to /dev/log. */
static enum outcome write_syslog(int level, const char *text, size_t len,
				 long long deadline_ms)
{
	static const int severity[] = { 7, 6, 5, 4, 3 };
	char msg[SLOT_TEXT + 64];
	time_t t = time(NULL);
	struct tm tm;
	size_t n;

	localtime_r(&t, &tm);
	n = (size_t)snprintf(msg, sizeof(msg), "<%d>", 3 * 8 + severity[level]);
	n += strftime(msg + n, sizeof(msg) - n, "%b %e %T ", &tm);
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "myxid[%d]: ", (int)getpid());
	if (len > sizeof(msg) - n)
		len = sizeof(msg) - n;
	memcpy(msg + n, text, len);
	n += len;
	for (;;) {
		if (!sink_connect())
			return FAILED;
		if (send(W.fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
			return WRITTEN;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			/* The reader is behind (a unix socket's queue holds 10
			 * datagrams by default): the thread waits, nobody else. */
			if (deadline_ms == NO_WAIT)
				return WOULD_BLOCK;
			if (!wait_writable(W.fd, deadline_ms))
				return FAILED;
			continue;
		}
		if (errno == EINTR)
			continue;
		/* syslogd restarted or gone: connect again later. */
		close(W.fd);
		W.fd = -1;
		return FAILED;
	}
}

static enum outcome write_stderr(const char *text, size_t len, long long deadline_ms)
{
	char line[SLOT_TEXT + 1];
	int fd = W.err_fd >= 0 ? W.err_fd : STDERR_FILENO;
	ssize_t n;

	memcpy(line, text, len);
	line[len++] = '\n';
	if (deadline_ms == NO_WAIT && W.err_fd < 0)
		return WOULD_BLOCK;       /* no way to try without blocking */
	for (;;) {
		/* A line is shorter than PIPE_BUF: a pipe takes all or none. */
		n = write(fd, line, len);
		if (n >= 0)
			return WRITTEN;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return FAILED;
		if (deadline_ms == NO_WAIT)
			return WOULD_BLOCK;
		if (!wait_writable(fd, deadline_ms))
			return FAILED;
	}
}

/* ---------------------------------------------------------------- thread */

/* deadline_ms: NO_WAIT (a loop's call: WOULD_BLOCK rather than wait), 0
 * (the thread: wait as long as it takes), or when to give up (stopping). */
static enum outcome emit(int level, const char *text, size_t len, size_t stamp_len,
			 long long deadline_ms)
{
	if (W.syslog)
		return write_syslog(level, text + stamp_len, len - stamp_len, deadline_ms);
	return write_stderr(text, len, deadline_ms);
}

static void report_drops(uint64_t n, long long deadline_ms)
{
	char line[256];
	size_t stamp = log_writer_stamp(line, sizeof(line), 3);
	int r = snprintf(line + stamp, sizeof(line) - stamp,
			 "%llu log line(s) dropped: the log target did not keep up",
			 (unsigned long long)n);

	if (emit(3, line, stamp + (size_t)r, stamp, deadline_ms) != WRITTEN) {
		pthread_mutex_lock(&W.mu);
		W.dropped_unreported += n;
		pthread_mutex_unlock(&W.mu);
	}
}

static void *writer_main(void *unused)
{
	static struct slot line;      /* this thread's copy of the line it writes */

	(void)unused;
	for (;;) {
		uint64_t unreported;
		long long deadline;

		pthread_mutex_lock(&W.mu);
		while (W.count == 0 && !W.stop)
			pthread_cond_wait(&W.wake, &W.mu);
		if (W.count == 0) {
			W.ended = true;
			pthread_cond_broadcast(&W.drained);
			pthread_mutex_unlock(&W.mu);
			return NULL;
		}
		line = W.slots[W.head];
		W.head = (W.head + 1) % SLOTS;
		W.count--;
		unreported = W.dropped_unreported;
		W.dropped_unreported = 0;
		deadline = W.stop ? W.stop_deadline_ms : 0;
		W.busy = true;
		pthread_mutex_unlock(&W.mu);

		if (unreported != 0)
			report_drops(unreported, deadline);
		bool written = emit(line.level, line.text, line.len, line.stamp_len,
				    deadline) == WRITTEN;
		pthread_mutex_lock(&W.mu);
		W.busy = false;
		if (!written) {
			W.dropped_total++;
			W.dropped_unreported++;
		}
		if (W.count == 0)
			pthread_cond_broadcast(&W.drained);
		pthread_mutex_unlock(&W.mu);
	}
}

/* ---------------------------------------------------------------- API */

/* Where a loop may write stderr without ever waiting: fd 2 itself for a
 * regular file; for a pipe or a terminal, stderr opened again as a file
 * description of our own, non-blocking (setting O_NONBLOCK on fd 2 itself
 * would change it for every process sharing it). -1 where neither works
 * (a socket): then every line goes through the thread. */
static int stderr_nonblocking(void)
{
	struct stat st;

	if (fstat(STDERR_FILENO, &st) != 0)
		return -1;
	/* A regular file does not make a writer wait, and a description of
	 * our own would write at its own offset over the shared one's. */
	if (S_ISREG(st.st_mode))
		return STDERR_FILENO;
	if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
		return -1;
	return open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
}

int log_writer_start(const struct log_sink *sink, char *err, size_t err_size)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int rc = 0;

	if (sink->syslog && sink_resolve(sink->address, &ss, &len, err, err_size) != 0)
		return -1;
	pthread_mutex_lock(&W.mu);
	if (W.state == STOPPED) {
		pthread_mutex_unlock(&W.mu);
		return 0;
	}
	/* Lines already queued go to the new sink: a reload that changes the
	 * target takes effect from its own log line on. */
	if (W.fd >= 0)
		close(W.fd);
	W.fd = -1;
	W.next_connect_ms = 0;
	W.syslog = sink->syslog;
	if (sink->syslog) {
		W.addr = ss;
		W.addr_len = len;
	}
	if (!sink->syslog && W.err_fd < 0)
		W.err_fd = stderr_nonblocking();
	if (W.state == NOT_STARTED) {
		if (W.slots == NULL)
			W.slots = calloc(SLOTS, sizeof(*W.slots));
		if (W.slots == NULL || pthread_create(&W.thread, NULL, writer_main, NULL) != 0) {
			free(W.slots);
			W.slots = NULL;
			snprintf(err, err_size, "cannot start the logging thread");
			rc = -1;
		} else {
			W.state = RUNNING;
		}
	}
	pthread_mutex_unlock(&W.mu);
	return rc;
}

bool log_writer_put(int level, const char *line, size_t len, size_t stamp_len)
{
	struct slot *s;

	pthread_mutex_lock(&W.mu);
	if (W.state == NOT_STARTED) {
		pthread_mutex_unlock(&W.mu);
		return false;
	}
	/* Nothing waits and the thread is not writing: try the line now,
	 * without waiting, so that in the usual case it is out at once and in
	 * order. Only a target that would block leaves it to the thread. */
	if (W.state == RUNNING && W.count == 0 && !W.busy && W.dropped_unreported == 0 &&
	    emit(level, line, len > SLOT_TEXT ? SLOT_TEXT : len,
		 stamp_len < len ? stamp_len : 0, NO_WAIT) != WOULD_BLOCK) {
		pthread_mutex_unlock(&W.mu);
		return true;
	}
	if (W.state == STOPPED || W.count == SLOTS) {
		/* Full: the target is not keeping up. Drop, count, say so later. */
		W.dropped_total++;
		W.dropped_unreported++;
		pthread_mutex_unlock(&W.mu);
		return true;
	}
	s = &W.slots[(W.head + W.count) % SLOTS];
	if (len > SLOT_TEXT)
		len = SLOT_TEXT;
	memcpy(s->text, line, len);
	s->len = (unsigned short)len;
	s->stamp_len = (unsigned short)(stamp_len < len ? stamp_len : 0);
	s->level = (unsigned char)level;
	W.count++;
	pthread_cond_signal(&W.wake);
	pthread_mutex_unlock(&W.mu);
	return true;
}

void log_writer_stop(int timeout_ms)
{
	struct timespec until;
	bool ended;

	pthread_mutex_lock(&W.mu);
	if (W.state != RUNNING) {
		pthread_mutex_unlock(&W.mu);
		return;
	}
	W.stop = true;
	W.stop_deadline_ms = now_ms() + timeout_ms;
	pthread_cond_signal(&W.wake);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (!W.ended &&
	       pthread_cond_timedwait(&W.drained, &W.mu, &until) != ETIMEDOUT)
		;
	ended = W.ended;
	/* A thread that finished leaves stderr to log.c again. One stuck in
	 * a write leaves it dropping lines: writing stderr ourselves could
	 * block on the very pipe it is stuck on. */
	W.state = ended ? NOT_STARTED : STOPPED;
	W.stop = false;
	W.ended = false;
	pthread_mutex_unlock(&W.mu);
	if (ended)
		pthread_join(W.thread, NULL);
	else
		pthread_detach(W.thread);
}

uint64_t log_writer_dropped(void)
{
	uint64_t n;

	pthread_mutex_lock(&W.mu);
	n = W.dropped_total;
	pthread_mutex_unlock(&W.mu);
	return n;
}
