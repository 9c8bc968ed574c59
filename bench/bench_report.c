/*
 * The human table and the JSON object of a myxid-bench run (see
 * bench_report.h). Both read the run's counters after every thread has
 * stopped, so plain reads are enough.
 */
#include <errno.h>
#include <string.h>

#include "bench_report.h"
#include "bench_run.h"

static const char *mode_name(void)
{
	return run.o.mode == MODE_PLAIN ? "plain" : "myxi";
}

static const char *publish_name(void)
{
	static const char *names[] = { "none", "amqp", "http" };

	return names[run.o.publish];
}

/* (anon_ready - anon_before) per ready socket, in bytes; -1 if unknown. */
static double bytes_per_socket(const struct bench_results *r)
{
	if (!r->before.ok || !r->ready.ok || run.ready == 0 ||
	    r->before.anon_kib < 0 || r->ready.anon_kib < 0)
		return -1;
	return (double)(r->ready.anon_kib - r->before.anon_kib) * 1024.0 / (double)run.ready;
}

static void kib(FILE *f, const struct proc_sample *s, long v)
{
	if (s->ok && v >= 0)
		fprintf(f, " %10ld", v);
	else
		fprintf(f, " %10s", "-");
}

void report_table(FILE *f, const struct bench_results *r)
{
	const struct bench_hist *h = &r->latency;

	fprintf(f, "myxid-bench  %s ws://%s:%u%s  %u sockets, %u threads, %u sources\n",
		mode_name(), run.o.target[0].host, run.o.target[0].port, run.o.path, run.o.connections,
		run.o.threads, run.o.sources);
	if (run.o.churn_s > 0) {
		fprintf(f, "churn        %llu cycles in %.2f s = %.0f /s, errors %llu\n",
			(unsigned long long)run.cycles, r->churn_s,
			r->churn_s > 0 ? (double)run.cycles / r->churn_s : 0.0,
			(unsigned long long)r->errors);
		fprintf(f, "cycle us     p50 %.0f  p99 %.0f  max %.0f\n",
			hist_pct_us(&r->cycle, 50), hist_pct_us(&r->cycle, 99),
			(double)r->cycle.max_ns / 1000.0);
	} else {
		fprintf(f, "ready        %llu / %u in %.3f s = %.0f /s (failed %llu)\n",
			(unsigned long long)run.ready, run.o.connections, r->connect_s,
			r->ready_per_s, (unsigned long long)run.failed);
	}
	if (run.o.expect_only)
		fprintf(f, "expected     %llu messages from another generator\n",
			(unsigned long long)run.o.messages);
	if (run.o.publish != PUB_NONE) {
		fprintf(f, "published    %llu of %llu via %s, ", (unsigned long long)run.published,
			(unsigned long long)run.o.messages, publish_name());
		if (run.o.rate > 0)
			fprintf(f, "rate %.0f/s", run.o.rate);
		else
			fprintf(f, "window %u", run.o.window);
		fprintf(f, ", refused %llu\n", (unsigned long long)run.publish_failed);
	}
	if (run.o.publish != PUB_NONE || run.o.expect_only) {
		fprintf(f, "deliveries   expected %llu received %llu lost %llu "
			"(dup %llu, bad %llu) in %.3f s = %.0f /s\n",
			(unsigned long long)run.expected, (unsigned long long)run.received,
			(unsigned long long)r->lost, (unsigned long long)run.duplicates,
			(unsigned long long)run.bad_frames, r->delivery_s, r->deliveries_per_s);
		fprintf(f, "latency us   p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n",
			hist_pct_us(h, 50), hist_pct_us(h, 99), hist_pct_us(h, 99.9),
			(double)h->max_ns / 1000.0);
	}
	if (run.o.n_targets > 1 && run.lost_server > 0)
		fprintf(f, "failover     %llu lost their server, %llu back (%llu retries) in "
			"%.3f s; each away p50 %.0f ms  p99 %.0f ms  max %.0f ms\n",
			(unsigned long long)run.lost_server, (unsigned long long)run.reconnected,
			(unsigned long long)run.retries,
			(double)(run.t_last_back - run.t_first_lost) / 1e9,
			hist_pct_us(&r->back, 50) / 1000, hist_pct_us(&r->back, 99) / 1000,
			(double)r->back.max_ns / 1e6);
	if (run.o.server_pid > 0) {
		fprintf(f, "server KiB   %10s %10s %10s\n", "before", "ready", "end");
		fprintf(f, "  VmRSS     ");
		kib(f, &r->before, r->before.rss_kib);
		kib(f, &r->ready, r->ready.rss_kib);
		kib(f, &r->end, r->end.rss_kib);
		fprintf(f, "\n  RssAnon   ");
		kib(f, &r->before, r->before.anon_kib);
		kib(f, &r->ready, r->ready.anon_kib);
		kib(f, &r->end, r->end.anon_kib);
		if (bytes_per_socket(r) >= 0)
			fprintf(f, "\nper socket   %.0f bytes (RssAnon ready - before)\n",
				bytes_per_socket(r));
		else
			fputc('\n', f);
		if (run.o.churn_s > 0)
			fprintf(f, "server cpu   %.2f s during the churn\n",
				r->end.ok ? r->end.cpu_s - r->before.cpu_s : 0.0);
		else
			fprintf(f, "server cpu   %.2f s to ready, %.2f s after\n",
				r->ready.ok ? r->ready.cpu_s - r->before.cpu_s : 0.0,
				r->end.ok && r->ready.ok ? r->end.cpu_s - r->ready.cpu_s : 0.0);
	}
	fprintf(f, "bench cpu    user %.2f s, sys %.2f s\n", r->gen_user_s, r->gen_sys_s);
	fprintf(f, "result       %s%s\n", r->why[0] ? "FAIL: " : "ok", r->why);
}

static void json_kib(FILE *f, const char *name, const struct proc_sample *s, long v,
		     const char *sep)
{
	if (s->ok && v >= 0)
		fprintf(f, "\"%s\":%ld%s", name, v, sep);
	else
		fprintf(f, "\"%s\":null%s", name, sep);
}

int report_json(const char *path, const struct bench_results *r)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	const struct bench_hist *h = &r->latency;
	double bps = bytes_per_socket(r);

	if (f == NULL) {
		fprintf(stderr, "myxid-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "{\"mode\":\"%s\",\"publish\":\"%s\",\"connections\":%u,\"threads\":%u,"
		"\"sources\":%u,\"keys\":%u,\"ready\":%llu,\"failed\":%llu,"
		"\"connect_seconds\":%.6f,\"ready_per_second\":%.1f,",
		mode_name(), publish_name(), run.o.connections, run.o.threads, run.o.sources,
		run.o.keys, (unsigned long long)run.ready, (unsigned long long)run.failed,
		r->connect_s, r->ready_per_s);
	fprintf(f, "\"messages\":%llu,\"rate\":%.1f,\"window\":%u,\"published\":%llu,"
		"\"publish_refused\":%llu,\"expected\":%llu,\"received\":%llu,\"lost\":%llu,"
		"\"duplicates\":%llu,\"bad_frames\":%llu,\"socket_errors\":%llu,\"errors\":%llu,"
		"\"delivery_seconds\":%.6f,\"deliveries_per_second\":%.1f,",
		(unsigned long long)run.o.messages, run.o.rate, run.o.window,
		(unsigned long long)run.published, (unsigned long long)run.publish_failed,
		(unsigned long long)run.expected, (unsigned long long)run.received,
		(unsigned long long)r->lost, (unsigned long long)run.duplicates,
		(unsigned long long)run.bad_frames, (unsigned long long)run.conn_errors,
		(unsigned long long)r->errors, r->delivery_s, r->deliveries_per_s);
	fprintf(f, "\"deflate\":%s,\"line_bytes\":%u,\"wire_bytes\":%llu,\"deflated\":%llu,",
		run.o.deflate ? "true" : "false", run.o.line_bytes,
		(unsigned long long)run.wire_bytes, (unsigned long long)run.deflated);
	fprintf(f, "\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
		"\"samples\":%llu},",
		hist_pct_us(h, 50), hist_pct_us(h, 99), hist_pct_us(h, 99.9),
		(double)h->max_ns / 1000.0, (unsigned long long)h->n);
	/* CLOCK_MONOTONIC is one clock for every process on the machine: a
	 * cluster's generators are put on one time line with these. */
	fprintf(f, "\"t_first_publish_ns\":%llu,\"t_last_delivery_ns\":%llu,\"latency_hist\":",
		(unsigned long long)run.t_first_publish, (unsigned long long)run.t_last_delivery);
	hist_write_json(f, h);
	fprintf(f, ",\"failover\":{\"servers\":%u,\"lost_server\":%llu,\"reconnected\":%llu,"
		"\"retries\":%llu,\"resume\":%s,\"not_recovered\":%llu,"
		"\"t_first_lost_ns\":%llu,\"t_last_back_ns\":%llu,"
		"\"away_ms\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}}",
		run.o.n_targets - 1, (unsigned long long)run.lost_server,
		(unsigned long long)run.reconnected, (unsigned long long)run.retries,
		run.o.resume ? "true" : "false", (unsigned long long)run.not_recovered,
		(unsigned long long)run.t_first_lost, (unsigned long long)run.t_last_back,
		hist_pct_us(&r->back, 50) / 1000, hist_pct_us(&r->back, 99) / 1000,
		(double)r->back.max_ns / 1e6);
	fprintf(f, ",\"server\":{\"pid\":%d,", run.o.server_pid);
	json_kib(f, "rss_before_kib", &r->before, r->before.rss_kib, ",");
	json_kib(f, "rss_ready_kib", &r->ready, r->ready.rss_kib, ",");
	json_kib(f, "rss_end_kib", &r->end, r->end.rss_kib, ",");
	json_kib(f, "anon_before_kib", &r->before, r->before.anon_kib, ",");
	json_kib(f, "anon_ready_kib", &r->ready, r->ready.anon_kib, ",");
	json_kib(f, "anon_end_kib", &r->end, r->end.anon_kib, ",");
	if (r->before.ok && r->ready.ok)
		fprintf(f, "\"cpu_ready_s\":%.3f,", r->ready.cpu_s - r->before.cpu_s);
	else
		fprintf(f, "\"cpu_ready_s\":null,");
	if (r->ready.ok && r->end.ok)
		fprintf(f, "\"cpu_publish_s\":%.3f},", r->end.cpu_s - r->ready.cpu_s);
	else
		fprintf(f, "\"cpu_publish_s\":null},");
	if (bps >= 0)
		fprintf(f, "\"bytes_per_socket\":%.0f,", bps);
	else
		fprintf(f, "\"bytes_per_socket\":null,");
	fprintf(f, "\"generator\":{\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f},",
		r->gen_user_s, r->gen_sys_s);
	if (run.o.churn_s > 0 && r->before.ok && r->end.ok)
		fprintf(f, "\"server_cpu_churn_s\":%.3f,", r->end.cpu_s - r->before.cpu_s);
	if (run.o.churn_s > 0)
		fprintf(f, "\"churn_seconds\":%.3f,\"cycles\":%llu,\"cycles_per_second\":%.1f,"
			"\"cycle_latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},",
			r->churn_s, (unsigned long long)run.cycles,
			r->churn_s > 0 ? (double)run.cycles / r->churn_s : 0.0,
			hist_pct_us(&r->cycle, 50), hist_pct_us(&r->cycle, 99),
			(double)r->cycle.max_ns / 1000.0);
	/* why is our own text: no quotes or backslashes go into it. */
	fprintf(f, "\"ok\":%s,\"why\":\"%s\"}\n", r->why[0] ? "false" : "true", r->why);
	if (f != stdout)
		return fclose(f) == 0 ? 0 : -1;
	fflush(f);
	return 0;
}
