/*
 * Myxi's environment overrides (MYXI_PORT, PORT, MYXI_BIND_ADDRESS,
 * RABBITMQ_URL), applied to a configuration already loaded from its file;
 * see config_apply_env() in config.h.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "config.h"
#include "conf_parse.h"
#include "conf_value.h"

#include <stdlib.h>
#include <string.h>

/* A variable's value, or NULL when unset or empty. */
static const char *env_value(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Broker mode from RABBITMQ_URL: one URL or a comma-separated list. */
static int broker_from_env(struct myxid_config *cfg, const char *value,
			   char *err, size_t err_size)
{
	struct conf_broker *b = &cfg->broker;
	char *copy = strdup(value), *save = NULL, *url;

	if (copy == NULL) {
		conf_err(err, err_size, "RABBITMQ_URL", 0, "out of memory");
		return -1;
	}
	for (url = strtok_r(copy, ", ", &save); url != NULL;
	     url = strtok_r(NULL, ", ", &save)) {
		if (!conf_valid_broker_url(url)) {
			conf_err(err, err_size, "RABBITMQ_URL", 0,
				 "bad broker url '%s' (amqp://user:pass@host:port/vhost)", url);
			free(copy);
			return -1;
		}
		if (config_add_broker_url(b, url)) {
			free(copy);
			conf_err(err, err_size, "RABBITMQ_URL", 0, "out of memory");
			return -1;
		}
	}
	free(copy);
	b->enabled = b->n_urls > 0;
	b->pos.file = "RABBITMQ_URL";
	return 0;
}

/*
 * Every value is checked before anything changes, so a bad variable leaves
 * the config as it was; only running out of memory can stop half-way.
 */
int config_apply_env(struct myxid_config *cfg, char *err, size_t err_size)
{
	const char *port_var = env_value("MYXI_PORT") ? "MYXI_PORT" : "PORT";
	const char *port = env_value(port_var);
	const char *host = env_value("MYXI_BIND_ADDRESS");
	size_t i;

	if (port != NULL && !conf_valid_port(port)) {
		conf_err(err, err_size, port_var, 0,
			 "bad port '%s' (a number from 1 to 65535)", port);
		return -1;
	}
	if (!cfg->broker.enabled && env_value("RABBITMQ_URL") != NULL &&
	    broker_from_env(cfg, env_value("RABBITMQ_URL"), err, err_size))
		return -1;
	for (i = 0; i < cfg->n_listens; i++) {
		if ((port != NULL && conf_replace(&cfg->listens[i].port, port)) ||
		    (host != NULL &&
		     conf_set_host(&cfg->listens[i].host, host, strlen(host)))) {
			conf_err(err, err_size, cfg->path, 0, "out of memory");
			return -1;
		}
	}
	return 0;
}
