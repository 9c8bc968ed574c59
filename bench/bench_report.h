/*
 * myxid-bench's results: gathered by main once the threads have stopped,
 * printed as a table and written as one JSON object.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdio.h>

#include "bench_stats.h"

struct bench_results {
	double connect_s;                /* start to the last socket ready */
	double ready_per_s;
	uint64_t lost;
	uint64_t errors;
	double delivery_s;               /* first publish to last delivery */
	double deliveries_per_s;
	double churn_s;
	struct bench_hist latency;       /* publish to receive */
	struct bench_hist cycle;         /* churn: connect to Subscribed */
	struct bench_hist back;          /* failover: server lost to Subscribed */
	struct proc_sample before, ready, end;
	double gen_user_s, gen_sys_s;
	char why[512];                   /* empty when the run passed */
};

void report_table(FILE *f, const struct bench_results *r);
/* Write the JSON object to path ("-": stdout); 0, or -1 after saying why. */
int report_json(const char *path, const struct bench_results *r);

#endif
