/*
 * myxid: the command line. Loads the configuration, loads the plugins,
 * binds, and runs the event loop; "-t" stops after the checks, like
 * nginx -t, so a service manager can test a configuration before using it.
 */
#include "config.h"
#include "log.h"
#include "daemon.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/thread.h>

#ifndef PLUGINDIR
#define PLUGINDIR "/usr/local/lib/myxid/plugins"
#endif
#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc/myxid"
#endif

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: myxid [-t] [-c FILE] [-P DIR]\n"
		"Real-time push over WebSocket, compatible with Myxi.\n"
		"\n"
		"  -c, --config FILE      configuration file (default %s/myxid.conf)\n"
		"  -t, --test             check the configuration and plugins, then exit\n"
		"  -P, --plugin-dir DIR   load plugins from DIR (overrides plugin_dir)\n"
		"  -d, --debug            log at debug level\n"
		"  -V, --version          print the version and exit\n"
		"  -h, --help             print this help and exit\n"
		"\n"
		"Environment: MYXI_PORT (or PORT) and MYXI_BIND_ADDRESS override the\n"
		"port and address of every listen directive.\n", SYSCONFDIR);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "plugin-dir", required_argument, NULL, 'P' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = SYSCONFDIR "/myxid.conf", *plugin_dir = NULL;
	int opt, test_only = 0, debug = 0;

	while ((opt = getopt_long(argc, argv, "c:tP:dVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': test_only = 1; break;
		case 'P': plugin_dir = optarg; break;
		case 'd': debug = 1; break;
		case 'V': printf("myxid %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
				 MYXID_PLUGIN_ABI_MAJOR, MYXID_PLUGIN_ABI_MINOR);
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "myxid: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	/* Plugins may post() from their own threads, and the workers and the
	 * broker thread post to each other's loops. */
	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN);
	return daemon_main(path, plugin_dir, debug, test_only);
}
