/*
 * libcurl's multi interface on the host's event loop: libcurl says which
 * sockets it wants watched (CURLMOPT_SOCKETFUNCTION) and when it wants to
 * be woken (CURLMOPT_TIMERFUNCTION); the host's watches and timer call
 * curl_multi_socket_action() back, and every finished transfer is then
 * collected with curl_multi_info_read(). One multi handle per client, so
 * per plugin instance and event loop: nothing is shared between threads.
 *
 * libcurl forbids removing or adding easy handles from inside its own
 * callbacks, so the two callbacks here only touch watches and the timer;
 * transfers are finished after curl_multi_socket_action() has returned.
 */
#define _POSIX_C_SOURCE 200809L

#include "http_curl.h"
#include "plugin_util.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

/* One socket libcurl asked us to watch (its "socketp"). */
struct hc_sock {
	struct hc_client *c;
	curl_socket_t fd;
	struct myxid_watch *watch;
	struct hc_sock *prev, *next;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

/* Instances are created on their own loops' threads, possibly at once;
 * libcurl's global set-up must run once. It is never undone: the daemon
 * may still hold another instance's handles. */
static void global_init(void)
{
	Dl_info self;

	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	/* Pin this plugin, and libcurl with it, in memory for good: a reload
	 * unloads plugins, and a name lookup that libcurl's resolver thread
	 * still runs for a dropped request (CURLOPT_QUICK_EXIT leaves it
	 * behind) must not find its code unmapped. */
	if (dladdr((void *)global_init, &self) != 0 && self.dli_fname != NULL)
		(void)dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* Every finished transfer, handed to the client. The message is copied
 * first: finishing may remove handles, which invalidates it. */
static void collect(struct hc_client *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		CURL *easy = msg->easy_handle;
		CURLcode rc = msg->data.result;

		if (msg->msg == CURLMSG_DONE)
			hc_transfer_done(c, easy, rc);
	}
}

static void act(struct hc_client *c, curl_socket_t fd, int bits)
{
	int running;

	curl_multi_socket_action(c->multi, fd, bits, &running);
	collect(c);
}

static void sock_ready(int fd, unsigned ready, void *arg)
{
	struct hc_sock *s = arg;
	struct hc_client *c = s->c;   /* s may be freed by the action */
	int bits = 0;

	if (ready & MYXID_WATCH_READ)
		bits |= CURL_CSELECT_IN;
	if (ready & MYXID_WATCH_WRITE)
		bits |= CURL_CSELECT_OUT;
	act(c, fd, bits);
}

static void timer_fired(void *arg)
{
	act(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void sock_free(struct hc_client *c, struct hc_sock *s)
{
	PU_DLLIST_REMOVE(&c->socks, s);
	c->host->watch_free(&s->watch);
	free(s);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
		     void *socketp)
{
	struct hc_client *c = userp;
	struct hc_sock *s = socketp;
	unsigned events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			curl_multi_assign(c->multi, fd, NULL);
			sock_free(c, s);
		}
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= MYXID_WATCH_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= MYXID_WATCH_WRITE;
	if (s != NULL)
		return c->host->watch_set(s->watch, events) < 0 ? -1 : 0;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -1;
	s->c = c;
	s->fd = fd;
	s->watch = c->host->watch_new(c->inst, fd, events, sock_ready, s);
	if (s->watch == NULL) {
		free(s);
		c->host->log(c->inst, MYXID_LOG_WARNING, "cannot watch a socket");
		return -1;
	}
	PU_DLLIST_PREPEND(&c->socks, s);
	curl_multi_assign(c->multi, fd, s);
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct hc_client *c = userp;

	(void)multi;
	if (timeout_ms < 0)
		c->host->timer_stop(c->curl_timer);
	else
		c->host->timer_start(c->curl_timer, (unsigned)timeout_ms);
	return 0;
}

/* The resolver must not block the loop. Debian 12's libcurl4-openssl
 * (7.88.1) is built with the threaded resolver: its features include
 * CURL_VERSION_ASYNCHDNS. A build without one would block on every name
 * lookup, so say so rather than stall quietly. */
static void check_resolver(struct hc_client *c)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	if (!(v->features & CURL_VERSION_ASYNCHDNS))
		c->host->log(c->inst, MYXID_LOG_WARNING, "libcurl %s has no "
			     "asynchronous resolver: looking up a host name "
			     "blocks the event loop; use an IP address in url",
			     v->version);
}

int hc_multi_open(struct hc_client *c, char *err, size_t err_size)
{
	long pool = (long)c->cfg.pool_size;

	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		pu_err(err, err_size, "libcurl: %s", curl_easy_strerror(global_rc));
		return -1;
	}
	c->curl_timer = c->host->timer_new(c->inst, timer_fired, c);
	c->multi = curl_multi_init();
	if (c->curl_timer == NULL || c->multi == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	check_resolver(c);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	/* The client already keeps at most pool_size transfers in the multi;
	 * these make libcurl's cache agree (and hold under HTTP/2 too). */
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, pool);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, pool);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, pool);
	return 0;
}

/* Every easy handle must be out of the multi by now. */
void hc_multi_close(struct hc_client *c)
{
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);   /* may still call on_socket */
	c->multi = NULL;
	while (c->socks != NULL)
		sock_free(c, c->socks);
	if (c->curl_timer != NULL)
		c->host->timer_free(&c->curl_timer);
}
