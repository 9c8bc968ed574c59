/*
 * myxid-ctl: the control API (myxid-control(7)) from the command line.
 *
 *   myxid-ctl [-u URL] disconnect (--user ID... | --token T | --token-sha256 HEX
 *                                  | --socket ID) [--code N] [--reason TEXT]
 *   myxid-ctl [-u URL] unsubscribe (WHO) EXCHANGE ROUTING_KEY
 *   myxid-ctl [-u URL] subscribers EXCHANGE ROUTING_KEY
 *   myxid-ctl [-u URL] keys EXCHANGE
 *   myxid-ctl [-u URL] nodes
 *
 * The key comes from MYXID_CONTROL_KEY or --key-file, never from the
 * command line (where ps would show it). The daemon's JSON answer is
 * printed; exit status 0 for 2xx, 1 for any other answer or no answer,
 * 2 for bad usage.
 */
#include <curl/curl.h>
#include <json-c/json.h>

#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "myxid-ctl"
#define EXIT_ANSWER 1
#define EXIT_USAGE 2
#define DEFAULT_URL "http://127.0.0.1:5005"
#define MAX_USERS 1000

static const char usage_text[] =
"usage: " PROG " [-u URL] [--key-file FILE] [-t SECONDS] COMMAND ...\n"
"  disconnect WHO [--code N] [--reason TEXT]\n"
"  unsubscribe WHO EXCHANGE ROUTING_KEY\n"
"  subscribers EXCHANGE ROUTING_KEY\n"
"  keys EXCHANGE\n"
"  nodes\n"
"WHO: --user ID (repeatable) | --token TOKEN | --token-sha256 HEX | --socket ID\n"
"The control key is read from MYXID_CONTROL_KEY, or the first line of --key-file.\n"
"URL: the daemon (default " DEFAULT_URL ", or MYXID_URL).\n";

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s", usage_text);
	exit(EXIT_USAGE);
}

struct buf {
	char *p;
	size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	char *p = realloc(b->p, b->len + size * n + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->len, data, size * n);
	b->len += size * n;
	p[b->len] = '\0';
	b->p = p;
	return size * n;
}

static char *read_key(const char *file)
{
	char line[4096];
	const char *env = getenv("MYXID_CONTROL_KEY");
	FILE *f;

	if (file == NULL) {
		if (env == NULL || *env == '\0')
			usage_error("no control key: set MYXID_CONTROL_KEY or give --key-file");
		return strdup(env);
	}
	f = fopen(file, "r");
	if (f == NULL || fgets(line, sizeof(line), f) == NULL)
		usage_error("--key-file %s: cannot read a key from it", file);
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0')
		usage_error("--key-file %s: the first line is empty", file);
	return strdup(line);
}

/* POST body (or GET when NULL) to URL/control/command; prints the answer. */
static int call(const char *url, const char *key, const char *command, json_object *body,
		long timeout)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct buf answer = { NULL, 0 };
	char target[2048], auth[4200];
	long status = 0;
	CURLcode rc;

	snprintf(target, sizeof(target), "%s/control/%s", url, command);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, target);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (body != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
				 json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	memset(auth, 0, sizeof(auth));
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		fprintf(stderr, PROG ": %s: %s\n", target, curl_easy_strerror(rc));
		free(answer.p);
		return EXIT_ANSWER;
	}
	if (answer.p != NULL)
		fputs(answer.p, status >= 200 && status < 300 ? stdout : stderr);
	if (status < 200 || status >= 300)
		fprintf(stderr, PROG ": HTTP %ld\n", status);
	free(answer.p);
	return status >= 200 && status < 300 ? 0 : EXIT_ANSWER;
}

struct who {
	json_object *users;    /* array, or NULL */
	const char *token, *sha, *socket;
	int given;
};

static void add_who(json_object *body, struct who *w)
{
	if (w->given != 1)
		usage_error("name the sockets once: --user (repeatable), --token, "
			    "--token-sha256 or --socket");
	if (w->users != NULL)
		json_object_object_add(body, json_object_array_length(w->users) == 1 ?
				       "user_id" : "user_ids",
				       json_object_array_length(w->users) == 1 ?
				       json_object_get(json_object_array_get_idx(w->users, 0)) :
				       json_object_get(w->users));
	if (w->token != NULL)
		json_object_object_add(body, "session_token", json_object_new_string(w->token));
	if (w->sha != NULL)
		json_object_object_add(body, "session_token_sha256", json_object_new_string(w->sha));
	if (w->socket != NULL)
		json_object_object_add(body, "socket_id", json_object_new_string(w->socket));
}

int main(int argc, char **argv)
{
	enum { O_USER = 256, O_TOKEN, O_SHA, O_SOCKET, O_CODE, O_REASON, O_KEYFILE };
	static const struct option opts[] = {
		{ "url", 1, NULL, 'u' }, { "timeout", 1, NULL, 't' },
		{ "key-file", 1, NULL, O_KEYFILE }, { "user", 1, NULL, O_USER },
		{ "token", 1, NULL, O_TOKEN }, { "token-sha256", 1, NULL, O_SHA },
		{ "socket", 1, NULL, O_SOCKET }, { "code", 1, NULL, O_CODE },
		{ "reason", 1, NULL, O_REASON }, { "help", 0, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *url = getenv("MYXID_URL"), *key_file = NULL, *reason = NULL, *cmd;
	struct who who = { NULL, NULL, NULL, NULL, 0 };
	json_object *body = json_object_new_object();
	long timeout = 10, code = 0;
	char *key, *end;
	int c, rc, rest;

	/* Options may come before or after the command (GNU getopt moves the
	 * other arguments to the end, in their order). */
	while ((c = getopt_long(argc, argv, "u:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 't':
			timeout = strtol(optarg, &end, 10);
			if (*end != '\0' || timeout < 1 || timeout > 3600)
				usage_error("-t: seconds from 1 to 3600");
			break;
		case O_KEYFILE: key_file = optarg; break;
		case O_USER:
			if (who.users == NULL) {
				who.users = json_object_new_array();
				who.given++;
			}
			if (json_object_array_length(who.users) >= MAX_USERS)
				usage_error("at most %d --user at once", MAX_USERS);
			json_object_array_add(who.users, json_object_new_string(optarg));
			break;
		case O_TOKEN: who.token = optarg; who.given++; break;
		case O_SHA: who.sha = optarg; who.given++; break;
		case O_SOCKET: who.socket = optarg; who.given++; break;
		case O_CODE:
			code = strtol(optarg, &end, 10);
			if (*end != '\0' || (code != 1000 && (code < 3000 || code > 4999)))
				usage_error("--code: 1000 or 3000-4999");
			break;
		case O_REASON: reason = optarg; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: usage_error("unknown option");
		}
	}
	if (optind >= argc)
		usage_error("no command");
	cmd = argv[optind++];
	rest = argc - optind;
	if (url == NULL)
		url = DEFAULT_URL;
	if (strcmp(cmd, "disconnect") == 0 && rest == 0) {
		add_who(body, &who);
		if (code)
			json_object_object_add(body, "code", json_object_new_int((int)code));
		if (reason != NULL)
			json_object_object_add(body, "reason", json_object_new_string(reason));
	} else if (strcmp(cmd, "unsubscribe") == 0 && rest == 2) {
		add_who(body, &who);
		json_object_object_add(body, "exchange", json_object_new_string(argv[optind]));
		json_object_object_add(body, "routing_key", json_object_new_string(argv[optind + 1]));
	} else if (strcmp(cmd, "subscribers") == 0 && rest == 2) {
		json_object_object_add(body, "exchange", json_object_new_string(argv[optind]));
		json_object_object_add(body, "routing_key", json_object_new_string(argv[optind + 1]));
	} else if (strcmp(cmd, "keys") == 0 && rest == 1) {
		json_object_object_add(body, "exchange", json_object_new_string(argv[optind]));
	} else if (strcmp(cmd, "nodes") == 0 && rest == 0) {
		json_object_put(body);
		body = NULL;
	} else {
		usage_error("%s: unknown command, or wrong arguments for it", cmd);
	}
	if ((who.given || code || reason) && strcmp(cmd, "disconnect") != 0 &&
	    strcmp(cmd, "unsubscribe") != 0)
		usage_error("%s takes no --user/--token/--socket/--code/--reason", cmd);
	key = read_key(key_file);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = call(url, key, cmd, body, timeout);
	memset(key, 0, strlen(key));
	free(key);
	json_object_put(body);
	json_object_put(who.users);
	curl_global_cleanup();
	return rc;
}
