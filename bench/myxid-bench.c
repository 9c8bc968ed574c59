/*
 * myxid-bench: the load generator for myxid and other Myxi-compatible (or,
 * in plain mode, nchan-like) push servers.
 *
 * It opens --connections WebSockets from 127.0.0.1..127.0.0.N, takes each
 * through the handshake and the subscription, optionally holds them, then
 * publishes --messages messages (AMQP or HTTP) stamped with their sequence
 * number and CLOCK_MONOTONIC send time, and counts every delivery. Or, with
 * --churn, keeps sockets cycling through connect ... Subscribed ... close.
 * It reports rates, latency percentiles, losses, and the server's memory
 * and CPU from /proc, as a table and as JSON.
 *
 * This file: the command line, the phases of a run, the exit status.
 * bench_ws.c: the sockets; bench_publish.c and bench_pub_*.c: publishing;
 * bench_stats.c: clock, histogram, /proc; bench_report.c: the output.
 *
 * Exit status: 0 when every socket got ready, nothing was lost and nothing
 * went wrong; 1 otherwise (the table's last line says why); 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_publish.h"
#include "bench_report.h"
#include "bench_run.h"
#include "bench_ws.h"

/* Sockets per source address: well under the ~28,000 ephemeral ports,
 * since connect() searches longer for a free port as they fill up. */
#define PER_SOURCE 5000
#define SPARE_FDS 64                     /* stdio, eventfd, publisher... */

static const char USAGE[] =
"usage: myxid-bench [options]\n"
"  --url ws://127.0.0.1:PORT/PATH  endpoint (plain mode: %k in PATH is the key)\n"
"  --mode myxi|plain               myxi: Welcome, [Authenticate], Subscribe (default)\n"
"  --connections N (100)           --sources N (N/5000)  --concurrency C (256)\n"
"  --token TOKEN                   myxi: Authenticate first\n"
"  --exchange X (bench)            --keys K (1)  --key-format FMT (k%d)\n"
"  --publish none|amqp|http        --amqp-url URL  --publish-url URL  --publish-key KEY\n"
"  --publish-conns P (16)          parallel HTTP publish connections (at most 64)\n"
"  --messages M (1000)  --rate R (0: window)  --window W (64)\n"
"  --expect M                      another generator publishes M messages (its\n"
"                                  --keys the same): count their deliveries here\n"
"  --hold S (0)  --drain S (5)  --churn S  --server-pid PID  --threads T (1)\n"
"  --hold-until FILE               once ready, wait until FILE exists, then --hold\n"
"  --failover URL[,URL...]         a ready socket whose server goes away reconnects to\n"
"                                  one of these (the JS client's backoff and jitter)\n"
"  --resume                        and subscribes there with \"since\" (history)\n"
"  --deflate                       offer permessage-deflate (no context takeover)\n"
"  --line-bytes N (0)              HTTP publish: a deploy-log line of N bytes in each payload\n"
"  --json FILE|-  --quiet\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("myxid-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fputs(USAGE, stderr);
	exit(2);
}

static unsigned long long num(const char *opt, const char *v, unsigned long long min,
			      unsigned long long max)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max || *v == '-')
		usage_error("%s wants a whole number from %llu to %llu", opt, min, max);
	return n;
}

/* A number from 0 to 1e9 (seconds, or messages per second for --rate). */
static double amount(const char *opt, const char *v)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v || *end || !(d >= 0) || d > 1e9)
		usage_error("%s wants a number from 0 to 1e9", opt);
	return d;
}

/* Text that goes into JSON between quotes as it is. */
static char *json_safe(const char *opt, char *v)
{
	for (const char *p = v; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			usage_error("%s may not hold quotes, backslashes or control characters", opt);
	return v;
}

/* ws://HOST[:PORT][/PATH] into t; returns the path (its own copy). */
static char *parse_ws_url(const char *opt, const char *url, struct bench_target *t)
{
	const char *p, *slash, *colon;
	size_t hl;

	if (strncmp(url, "ws://", 5) != 0)
		usage_error("%s must start with ws://", opt);
	p = url + 5;
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	hl = (size_t)((colon ? colon : slash) - p);
	if (hl == 0 || hl >= sizeof(t->host))
		usage_error("%s: bad host", opt);
	memcpy(t->host, p, hl);
	t->host[hl] = '\0';
	if (colon != NULL) {
		char *port = strndup(colon + 1, (size_t)(slash - colon - 1));

		t->port = (uint16_t)num(opt, port, 1, 65535);
		free(port);
	} else {
		t->port = 80;
	}
	if (strncmp(t->host, "127.", 4) != 0)
		usage_error("%s: only loopback (127.x.x.x) servers", opt);
	return strdup(*slash ? slash : "/");
}

/* --failover URL,URL...: the servers after --url (their paths are --url's). */
static void parse_failover(char *list)
{
	for (char *save = NULL, *u = strtok_r(list, ",", &save); u != NULL;
	     u = strtok_r(NULL, ",", &save)) {
		if (run.o.n_targets >= BENCH_MAX_TARGETS)
			usage_error("--failover: at most %d servers", BENCH_MAX_TARGETS - 1);
		free(parse_ws_url("--failover", u, &run.o.target[run.o.n_targets++]));
	}
}

static void check_key_format(const char *f)
{
	int d = 0;

	for (const char *p = f; *p; p++) {
		if (*p != '%')
			continue;
		if (p[1] == 'd')
			d++;
		else if (p[1] != '%')
			usage_error("--key-format: only %%d (once) and %%%% may follow %%");
		p++;
	}
	if (d != 1)
		usage_error("--key-format must hold exactly one %%d");
}

static void parse_args(int argc, char **argv)
{
	enum { O_URL = 256, O_MODE, O_CONNS, O_SOURCES, O_CONC, O_TOKEN, O_EXCH, O_KEYS,
	       O_KEYFMT, O_PUB, O_AMQP, O_PUBURL, O_PUBKEY, O_PUBCONNS, O_MSGS, O_RATE,
	       O_WINDOW, O_HOLD, O_DRAIN, O_CHURN, O_PID, O_THREADS, O_JSON, O_QUIET, O_DEFLATE,
	       O_LINE, O_HOLD_UNTIL, O_EXPECT, O_FAILOVER, O_RESUME, O_HELP };
	static const struct option opts[] = {
		{ "url", 1, NULL, O_URL }, { "mode", 1, NULL, O_MODE },
		{ "connections", 1, NULL, O_CONNS }, { "sources", 1, NULL, O_SOURCES },
		{ "concurrency", 1, NULL, O_CONC }, { "token", 1, NULL, O_TOKEN },
		{ "exchange", 1, NULL, O_EXCH }, { "keys", 1, NULL, O_KEYS },
		{ "key-format", 1, NULL, O_KEYFMT }, { "publish", 1, NULL, O_PUB },
		{ "amqp-url", 1, NULL, O_AMQP }, { "publish-url", 1, NULL, O_PUBURL },
		{ "publish-key", 1, NULL, O_PUBKEY }, { "publish-conns", 1, NULL, O_PUBCONNS },
		{ "messages", 1, NULL, O_MSGS }, { "rate", 1, NULL, O_RATE },
		{ "window", 1, NULL, O_WINDOW }, { "hold", 1, NULL, O_HOLD },
		{ "drain", 1, NULL, O_DRAIN }, { "churn", 1, NULL, O_CHURN },
		{ "server-pid", 1, NULL, O_PID }, { "threads", 1, NULL, O_THREADS },
		{ "json", 1, NULL, O_JSON }, { "quiet", 0, NULL, O_QUIET },
		{ "deflate", 0, NULL, O_DEFLATE }, { "line-bytes", 1, NULL, O_LINE },
		{ "hold-until", 1, NULL, O_HOLD_UNTIL }, { "expect", 1, NULL, O_EXPECT },
		{ "failover", 1, NULL, O_FAILOVER }, { "resume", 0, NULL, O_RESUME },
		{ "help", 0, NULL, O_HELP }, { NULL, 0, NULL, 0 }
	};
	struct bench_opts *o = &run.o;
	const char *url = NULL;
	char *failover = NULL;
	int c;

	o->mode = MODE_MYXI;
	o->connections = 100;
	o->concurrency = 256;
	o->exchange = "bench";
	o->keys = 1;
	o->key_format = "k%d";
	o->amqp_url = "amqp://guest:guest@127.0.0.1:5672/";
	o->publish_conns = 16;
	o->messages = 1000;
	o->window = 64;
	o->drain_s = 5;
	o->threads = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_URL: url = optarg; break;
		case O_MODE:
			if (strcmp(optarg, "myxi") == 0)
				o->mode = MODE_MYXI;
			else if (strcmp(optarg, "plain") == 0)
				o->mode = MODE_PLAIN;
			else
				usage_error("--mode is myxi or plain");
			break;
		case O_CONNS: o->connections = (unsigned)num("--connections", optarg, 1, 1000000); break;
		case O_SOURCES: o->sources = (unsigned)num("--sources", optarg, 1, 254); break;
		case O_CONC: o->concurrency = (unsigned)num("--concurrency", optarg, 1, 1000000); break;
		case O_TOKEN: o->token = json_safe("--token", optarg); break;
		case O_EXCH: o->exchange = json_safe("--exchange", optarg); break;
		case O_KEYS: o->keys = (unsigned)num("--keys", optarg, 1, 10000000); break;
		case O_KEYFMT: o->key_format = json_safe("--key-format", optarg); break;
		case O_PUB:
			if (strcmp(optarg, "none") == 0)
				o->publish = PUB_NONE;
			else if (strcmp(optarg, "amqp") == 0)
				o->publish = PUB_AMQP;
			else if (strcmp(optarg, "http") == 0)
				o->publish = PUB_HTTP;
			else
				usage_error("--publish is none, amqp or http");
			break;
		case O_AMQP: o->amqp_url = optarg; break;
		case O_PUBURL: o->publish_url = optarg; break;
		case O_PUBKEY: o->publish_key = optarg; break;
		case O_PUBCONNS: o->publish_conns = (unsigned)num("--publish-conns", optarg, 1, 64); break;
		case O_MSGS: o->messages = num("--messages", optarg, 0, 1000000000); break;
		case O_EXPECT:
			o->messages = num("--expect", optarg, 1, 1000000000);
			o->expect_only = true;
			break;
		case O_RATE: o->rate = amount("--rate", optarg); break;
		case O_WINDOW: o->window = (unsigned)num("--window", optarg, 1, 10000000); break;
		case O_HOLD: o->hold_s = amount("--hold", optarg); break;
		case O_HOLD_UNTIL: o->hold_until = optarg; break;
		case O_FAILOVER: failover = optarg; break;
		case O_RESUME: o->resume = true; break;
		case O_DRAIN: o->drain_s = amount("--drain", optarg); break;
		case O_CHURN: o->churn_s = amount("--churn", optarg); break;
		case O_PID: o->server_pid = (int)num("--server-pid", optarg, 1, 1u << 30); break;
		case O_THREADS: o->threads = (unsigned)num("--threads", optarg, 1, 64); break;
		case O_JSON: o->json_path = optarg; break;
		case O_QUIET: o->quiet = true; break;
		case O_DEFLATE: o->deflate = true; break;
		case O_LINE: o->line_bytes = (unsigned)num("--line-bytes", optarg, 0, 3000); break;
		case O_HELP: fputs(USAGE, stdout); exit(0);
		default: usage_error("unknown option");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument %s", argv[optind]);
	if (url == NULL)
		usage_error("--url is required");
	o->path = parse_ws_url("--url", url, &o->target[0]);
	o->n_targets = 1;
	if (failover != NULL)
		parse_failover(failover);
	check_key_format(o->key_format);
	if (o->sources == 0)
		o->sources = (o->connections + PER_SOURCE - 1) / PER_SOURCE;
	if (o->sources > 254)
		usage_error("%u sockets need more than 254 source addresses", o->connections);
	if (o->threads > o->connections)
		o->threads = o->connections;
	if (o->publish == PUB_HTTP && o->publish_url == NULL)
		usage_error("--publish http needs --publish-url");
	if (o->churn_s > 0 && o->publish != PUB_NONE)
		usage_error("--churn does not publish: leave out --publish");
	if (o->expect_only && (o->publish != PUB_NONE || o->churn_s > 0))
		usage_error("--expect counts what another generator publishes: leave out "
			    "--publish and --churn");
	/* A socket away from its server misses what is published meanwhile
	 * unless it resumes from history (--resume): the run counts it lost. */
	if (o->n_targets > 1 && (o->publish != PUB_NONE || o->churn_s > 0))
		usage_error("--failover is for held or --expect sockets: leave out --publish "
			    "and --churn");
	if (o->resume && o->n_targets < 2)
		usage_error("--resume is what --failover sockets do: give --failover");
	if (o->mode == MODE_PLAIN && o->token != NULL)
		usage_error("--token is for --mode myxi");
}

/* Raise the descriptor limit to the hard one, or say why N cannot fit. */
static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)run.o.connections + run.o.publish_conns + SPARE_FDS;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need) {
		fprintf(stderr, "myxid-bench: %u sockets need %llu descriptors, the hard "
			"limit (ulimit -Hn) is %llu\n", run.o.connections,
			(unsigned long long)need, (unsigned long long)rl.rlim_max);
		exit(2);
	}
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void progress(const char *fmt, ...)
{
	va_list ap;

	if (run.o.quiet)
		return;
	va_start(ap, fmt);
	fputs("myxid-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Wait for every socket to be ready or failed; gives up after 30 s
 * without progress (a server that stopped answering handshakes). */
static void wait_ready(void)
{
	uint64_t last = 0, since = now_ns(), shown = since;

	for (;;) {
		uint64_t done = __atomic_load_n(&run.ready, __ATOMIC_RELAXED) +
				__atomic_load_n(&run.failed, __ATOMIC_RELAXED);
		uint64_t now = now_ns();

		if (done >= run.o.connections)
			return;
		if (done != last) {
			last = done;
			since = now;
		} else if (now - since > 30000000000ull) {
			bench_note("%llu sockets still not ready after 30 s without progress",
				   (unsigned long long)(run.o.connections - done));
			return;
		}
		if (now - shown > 1000000000ull) {
			shown = now;
			progress("%llu of %u ready", (unsigned long long)run.ready,
				 run.o.connections);
		}
		sleep_s(0.005);
	}
}

/*
 * --hold-until: several generators driven as one (bench/run's cluster
 * scenarios, one generator per node) keep their sockets until the driver
 * has measured them all, and says so by creating the file.
 */
static void wait_for_file(const char *path)
{
	uint64_t deadline = now_ns() + 600000000000ull;

	while (access(path, F_OK) != 0) {
		if (now_ns() > deadline) {
			bench_note("%s did not appear within 10 minutes; going on", path);
			return;
		}
		sleep_s(0.01);
	}
}

/* After publishing: wait until every message is complete, or --drain. */
static void wait_drain(void)
{
	uint64_t deadline = now_ns() + (uint64_t)(run.o.drain_s * 1e9);

	while (__atomic_load_n(&run.complete, __ATOMIC_RELAXED) <
	       __atomic_load_n(&run.published, __ATOMIC_RELAXED) && now_ns() < deadline)
		sleep_s(0.001);
}

static void alloc_delivered(void)
{
	run.delivered = calloc(run.o.messages ? run.o.messages : 1, sizeof(*run.delivered));
	if (run.delivered == NULL) {
		fprintf(stderr, "myxid-bench: out of memory\n");
		exit(1);
	}
	/* Sockets count deliveries against delivered[] from now on. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/*
 * --expect: the messages come from another generator (a cluster's
 * publishing node), which starts when the same --hold-until file appears.
 * Every one is expected on every ready socket of its key; wait until all
 * are in, or --drain (at least 1 s) passes without a new delivery, or
 * none has come two minutes after the wait began.
 */
static void expect_phase(void)
{
	uint64_t start = now_ns(), since = start, last = 0;
	uint64_t quiet = (uint64_t)((run.o.drain_s > 1 ? run.o.drain_s : 1) * 1e9);

	for (uint64_t j = 0; j < run.o.messages; j++)
		run.expected += __atomic_load_n(&run.key_ready[j % run.o.keys], __ATOMIC_RELAXED);
	progress("expecting %llu deliveries of %llu messages",
		 (unsigned long long)run.expected, (unsigned long long)run.o.messages);
	for (;;) {
		uint64_t got = __atomic_load_n(&run.received, __ATOMIC_RELAXED), now = now_ns();

		if (__atomic_load_n(&run.complete, __ATOMIC_RELAXED) >= run.o.messages)
			return;
		if (got != last) {
			last = got;
			since = now;
		} else if (got > 0 ? now - since > quiet : now - start > 120000000000ull) {
			bench_note("%llu of %llu deliveries came", (unsigned long long)got,
				   (unsigned long long)run.expected);
			return;
		}
		sleep_s(0.002);
	}
}

static void publish_phase(void)
{
	alloc_delivered();
	progress("publishing %llu messages", (unsigned long long)run.o.messages);
	if (publish_start() != 0)
		exit(1);
	while (!__atomic_load_n(&run.publishing_done, __ATOMIC_ACQUIRE))
		sleep_s(0.005);
	publish_join();
	wait_drain();
}

static void finish_results(struct bench_results *r, uint64_t t0)
{
	char *w = r->why;
	size_t left = sizeof(r->why);
	int n;

#define WHY(...) do { n = snprintf(w, left, "%s", w == r->why ? "" : "; "); \
		      w += n; left -= (size_t)n; n = snprintf(w, left, __VA_ARGS__); \
		      if (n > 0 && (size_t)n < left) { w += n; left -= (size_t)n; } } while (0)
	if (run.t_last_ready > t0)
		r->connect_s = (double)(run.t_last_ready - t0) / 1e9;
	r->ready_per_s = r->connect_s > 0 ? (double)run.ready / r->connect_s : 0;
	r->lost = run.expected > run.received ? run.expected - run.received : 0;
	r->errors = run.conn_errors + run.duplicates + run.bad_frames + run.publish_failed;
	if (run.t_last_delivery > run.t_first_publish && run.t_first_publish > 0)
		r->delivery_s = (double)(run.t_last_delivery - run.t_first_publish) / 1e9;
	r->deliveries_per_s = r->delivery_s > 0 ? (double)run.received / r->delivery_s : 0;
	self_cpu(&r->gen_user_s, &r->gen_sys_s);
	if (run.o.churn_s > 0 && run.cycles == 0)
		WHY("no churn cycle completed");
	if (run.o.churn_s == 0 && run.ready < run.o.connections)
		WHY("%llu of %u sockets not ready",
		    (unsigned long long)(run.o.connections - run.ready), run.o.connections);
	if (run.o.publish != PUB_NONE && run.published < run.o.messages)
		WHY("%llu of %llu messages not published",
		    (unsigned long long)(run.o.messages - run.published),
		    (unsigned long long)run.o.messages);
	if (run.reconnected < run.lost_server)
		WHY("%llu of %llu sockets that lost their server did not come back",
		    (unsigned long long)(run.lost_server - run.reconnected),
		    (unsigned long long)run.lost_server);
	if (run.not_recovered > 0)
		WHY("%llu sockets could not resume (\"recovered\":false)",
		    (unsigned long long)run.not_recovered);
	if (r->lost > 0)
		WHY("%llu deliveries lost", (unsigned long long)r->lost);
	if (r->errors > 0)
		WHY("%llu errors (sockets %llu, duplicates %llu, bad frames %llu, "
		    "refused publishes %llu)", (unsigned long long)r->errors,
		    (unsigned long long)run.conn_errors, (unsigned long long)run.duplicates,
		    (unsigned long long)run.bad_frames, (unsigned long long)run.publish_failed);
#undef WHY
}

int main(int argc, char **argv)
{
	static struct bench_results r;
	uint64_t t0;

	parse_args(argc, argv);
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	run.key_ready = calloc(run.o.keys, sizeof(*run.key_ready));
	if (run.key_ready == NULL) {
		fprintf(stderr, "myxid-bench: out of memory\n");
		return 1;
	}
	if (run.o.server_pid > 0) {
		r.before = proc_read(run.o.server_pid);
		if (!r.before.ok)
			usage_error("--server-pid %d: no such process", run.o.server_pid);
	}
	/* Deliveries from another generator may come as soon as it sees the
	 * --hold-until file, before we do. */
	if (run.o.expect_only)
		alloc_delivered();
	t0 = now_ns();
	if (ws_start() != 0)
		return 1;
	if (run.o.churn_s > 0) {
		progress("churning %u sockets for %.1f s", run.o.connections, run.o.churn_s);
		sleep_s(run.o.churn_s);
		ws_stop();
		r.churn_s = (double)(now_ns() - t0) / 1e9;
		if (run.o.server_pid > 0)
			r.end = proc_read(run.o.server_pid);
	} else {
		wait_ready();
		progress("%llu of %u sockets ready", (unsigned long long)run.ready,
			 run.o.connections);
		if (run.o.hold_until != NULL)
			wait_for_file(run.o.hold_until);
		if (run.o.hold_s > 0)
			sleep_s(run.o.hold_s);
		if (run.o.server_pid > 0)
			r.ready = proc_read(run.o.server_pid);
		if (run.o.publish != PUB_NONE)
			publish_phase();
		else if (run.o.expect_only)
			expect_phase();
		if (run.o.server_pid > 0)
			r.end = proc_read(run.o.server_pid);
		ws_stop();
	}
	ws_merge(&r.latency, &r.cycle, &r.back);
	finish_results(&r, t0);
	/* With --json - stdout is the JSON alone; the table goes to stderr. */
	report_table(run.o.json_path && strcmp(run.o.json_path, "-") == 0 ? stderr : stdout, &r);
	fflush(stdout);
	if (run.o.json_path != NULL && report_json(run.o.json_path, &r) != 0)
		return 1;
	return r.why[0] ? 1 : 0;
}
