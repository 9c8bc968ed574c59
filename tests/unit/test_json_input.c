/*
 * Unit tests for json_input: the same answers with and without a thread's
 * cached tokener (json_input_thread_init), in particular after a rejected
 * or truncated document, whose state must not leak into the next parse;
 * the depth limit at its edge; and the thread's locale being the C locale
 * object (what spares json-c its per-parse locale copy).
 */
#include "json_input.h"
#include "tap.h"

#include <locale.h>
#include <pthread.h>
#include <string.h>

struct sample {
	const char *text;
	int max_depth;
	const char *want;               /* compact text, or NULL: rejected */
};

static const struct sample samples[] = {
	{ "{\"action\":\"Ping\",\"tag\":1}", 32, "{\"action\":\"Ping\",\"tag\":1}" },
	{ "{\"action\":\"Pi", 32, NULL },                  /* truncated */
	{ "[1,2,3]", 32, "[1,2,3]" },
	{ "{\"a\":1} x", 32, NULL },                       /* garbage after */
	{ " {\"a\":1.5} \r\n", 32, "{\"a\":1.5}" },
	{ "[[[[1]]]]", 4, "[[[[1]]]]" },                   /* exactly max_depth */
	{ "[[[[[1]]]]]", 4, NULL },                        /* one deeper */
	{ "{'a':1}", 32, NULL },                           /* json-c would take it */
	{ "\"caf\xC3\xA9\"", 32, "\"caf\xC3\xA9\"" },
	{ "\"\xC0\xAF\"", 32, NULL },                      /* overlong */
	{ "{\"tag\":-12.25e1}", 32, "{\"tag\":-12.25e1}" },
	{ "", 32, NULL },
};

#define N_SAMPLES (sizeof(samples) / sizeof(samples[0]))

/* Every sample twice in a row, so each one follows every kind of ending. */
static void run_samples(const char *how)
{
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < N_SAMPLES; i++) {
			const struct sample *s = &samples[i];
			json_object *o = json_input_parse(s->text, strlen(s->text), s->max_depth);
			const char *got = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
									  JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;

			if (s->want == NULL)
				ok(o == NULL, "%s, round %d: '%s' rejected", how, round, s->text);
			else
				is_str(got ? got : "(rejected)", s->want, "%s, round %d: '%s'", how,
				       round, s->text);
			json_object_put(o);
		}
}

static void *thread_main(void *arg)
{
	locale_t before = uselocale((locale_t)0);

	(void)arg;
	json_input_thread_init();
	ok(uselocale((locale_t)0) != before, "the thread now has a locale of its own");
	ok(uselocale((locale_t)0) == newlocale(LC_ALL_MASK, "C", (locale_t)0),
	   "and it is glibc's C locale object");
	run_samples("cached tokener");
	json_input_thread_done();
	ok(uselocale((locale_t)0) == LC_GLOBAL_LOCALE, "done puts the global locale back");
	run_samples("after done");
	return NULL;
}

int main(void)
{
	pthread_t t;
	int rc;

	run_samples("no thread setup");
	/* tap.h is not thread-safe: nothing printed here while it runs. */
	rc = pthread_create(&t, NULL, thread_main, NULL);
	if (rc == 0)
		pthread_join(t, NULL);
	ok(rc == 0, "the thread ran");
	return done_testing();
}
