/*
 * Measuring for myxid-bench: the clock, a fixed latency histogram, and
 * readings of a process from /proc.
 *
 * The histogram is log-linear over nanoseconds: exact below 128 ns, then 64
 * linear steps per power of two (under 1.6% error), up to 2^36 ns (about
 * 69 s); larger values land in the last bucket. It never allocates, so
 * recording costs a few instructions; each thread keeps its own and main
 * merges them.
 */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define HIST_BUCKETS 2048

struct bench_hist {
	uint64_t n;
	uint64_t max_ns;
	uint64_t count[HIST_BUCKETS];
};

uint64_t now_ns(void);                   /* CLOCK_MONOTONIC */

void hist_add(struct bench_hist *h, uint64_t ns);
void hist_merge(struct bench_hist *into, const struct bench_hist *from);
/* The value at percentile p (0..100) in microseconds; 0 when empty. */
double hist_pct_us(const struct bench_hist *h, double p);
/* The non-empty buckets as a JSON array of [middle ns, count] pairs, so
 * that several generators' histograms can be merged exactly. */
void hist_write_json(FILE *f, const struct bench_hist *h);

/* One reading of /proc/PID. */
struct proc_sample {
	bool ok;
	long rss_kib;                        /* VmRSS */
	long anon_kib;                       /* RssAnon */
	double cpu_s;                        /* utime + stime */
};

/* Read /proc/pid/status and stat; ok is false when the process is gone. */
struct proc_sample proc_read(int pid);

/* This process's own user and system CPU seconds. */
void self_cpu(double *user_s, double *sys_s);

#endif
