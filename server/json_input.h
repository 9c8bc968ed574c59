/*
 * Parsing untrusted JSON (client actions, /publish bodies, broker messages)
 * into json-c objects, strictly: valid UTF-8 (json-c's own check lets
 * overlongs and surrogates through), bounded nesting, nothing but white
 * space after the value, and RFC 8259 syntax only (json-c also takes
 * single quotes, raw control characters in strings, NaN, Infinity and
 * "1.", which would then be echoed to browsers as invalid JSON).
 */
#ifndef MYXID_JSON_INPUT_H
#define MYXID_JSON_INPUT_H

#include <stddef.h>
#include <json-c/json.h>

/* The parsed value (any type), or NULL if data is not strict JSON or nests
 * deeper than max_depth. The caller owns the result. */
json_object *json_input_parse(const void *data, size_t len, int max_depth);

/* o's text if o is a string without an embedded NUL ("\u0000"), else NULL:
 * a name compared as a C string must not match by its prefix. Owned by o. */
const char *json_input_string(json_object *o);

/*
 * For a thread that parses on a hot path (a worker loop, the broker
 * thread): keeps one tokener for the thread's parses, and switches the
 * thread to glibc's C locale object. json-c puts LC_NUMERIC to "C" around
 * every parse by copying the thread's locale, a malloc under glibc's
 * global locale lock, unless the thread already uses that object, which
 * glibc hands back without copying. Other threads may parse without it.
 * json_input_thread_done() frees the tokener; call it before the thread
 * returns.
 */
void json_input_thread_init(void);
void json_input_thread_done(void);

#endif
