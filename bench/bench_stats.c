/*
 * The clock, the latency histogram and /proc readings (see bench_stats.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_stats.h"

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Below 128: the value itself. From 2^e (e >= 7): 64 steps of 2^(e-6). */
static unsigned bucket_of(uint64_t v)
{
	unsigned e, idx;

	if (v < 128)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	idx = 128u + (e - 7u) * 64u + (unsigned)((v >> (e - 6u)) - 64u);
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The middle of bucket idx, in nanoseconds. */
static double bucket_mid(unsigned idx)
{
	unsigned e, m;

	if (idx < 128)
		return idx;
	e = (idx - 128u) / 64u + 7u;
	m = (idx - 128u) % 64u + 64u;
	return ((double)m + 0.5) * (double)(1ull << (e - 6u));
}

void hist_add(struct bench_hist *h, uint64_t ns)
{
	h->count[bucket_of(ns)]++;
	h->n++;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

void hist_merge(struct bench_hist *into, const struct bench_hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->count[i] += from->count[i];
	into->n += from->n;
	if (from->max_ns > into->max_ns)
		into->max_ns = from->max_ns;
}

double hist_pct_us(const struct bench_hist *h, double p)
{
	uint64_t rank, seen = 0;
	double v;

	if (h->n == 0)
		return 0;
	/* The smallest value with at least p% of the samples at or below. */
	rank = (uint64_t)(p / 100.0 * (double)h->n + 0.999999);
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= rank) {
			v = bucket_mid(i);
			/* A bucket's middle may lie above the largest sample. */
			if (v > (double)h->max_ns)
				v = (double)h->max_ns;
			return v / 1000.0;
		}
	}
	return (double)h->max_ns / 1000.0;
}

void hist_write_json(FILE *f, const struct bench_hist *h)
{
	const char *sep = "";

	fputc('[', f);
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		if (h->count[i] == 0)
			continue;
		fprintf(f, "%s[%.0f,%llu]", sep, bucket_mid(i), (unsigned long long)h->count[i]);
		sep = ",";
	}
	fputc(']', f);
}

/* "Name:   1234 kB" lines of /proc/PID/status. */
static long status_kib(const char *status, const char *name)
{
	const char *p = strstr(status, name);
	long v = -1;

	if (p != NULL)
		sscanf(p + strlen(name), " %ld", &v);
	return v;
}

struct proc_sample proc_read(int pid)
{
	struct proc_sample s = { .ok = false, .rss_kib = -1, .anon_kib = -1 };
	char path[64], buf[8192];
	unsigned long ut = 0, st = 0;
	const char *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return s;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	s.rss_kib = status_kib(buf, "\nVmRSS:");
	s.anon_kib = status_kib(buf, "\nRssAnon:");

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return s;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields count from
	 * the last ')'. utime and stime are fields 14 and 15; after ") " comes
	 * field 3. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&ut, &st) != 2)
		return s;
	s.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	s.ok = true;
	return s;
}

void self_cpu(double *user_s, double *sys_s)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	*sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
