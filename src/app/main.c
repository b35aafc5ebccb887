/* masq: the subcommand table. Each subcommand lives in its own file; this
 * one only parses the options and dispatches. */
#include <stdio.h>
#include <string.h>

#include "app/gencert.h"
#include "app/options.h"
#include "client/connect.h"
#include "client/forward.h"
#include "client/httpproxy.h"
#include "client/socks.h"
#include "io/log.h"
#include "server/server.h"

typedef struct subcommand {
  const char *name;
  masq_cmd cmd;
  const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"server", MASQ_CMD_SERVER, "run the MASQUE proxy (CONNECT-UDP and CONNECT-IP over HTTP/3)"},
    {"connect", MASQ_CMD_CONNECT, "bring up a VPN through a MASQUE proxy (CONNECT-IP)"},
    {"forward", MASQ_CMD_FORWARD, "forward local UDP and TCP ports through a MASQUE proxy"},
    {"socks", MASQ_CMD_SOCKS, "run a local SOCKS5 proxy that tunnels through a MASQUE proxy"},
    {"http-proxy", MASQ_CMD_HTTP_PROXY,
     "run a local HTTP proxy that tunnels through a MASQUE proxy"},
    {"gencert", MASQ_CMD_GENCERT, "write a self-signed certificate and key for testing"},
};

static void usage(FILE *f) {
  fprintf(f, "Usage: masq <command> [options]\n\nCommands:\n");
  for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
    fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
  fprintf(f, "\n'masq <command> --help' shows the options of a command.\n");
}

static int run(const masq_opts *o) {
  char err[512] = "";
  switch (o->cmd) {
  case MASQ_CMD_SERVER:
    return masq_server_run(o);
  case MASQ_CMD_FORWARD:
    return masq_forward_run(o);
  case MASQ_CMD_CONNECT:
    return masq_connect_run(o);
  case MASQ_CMD_SOCKS:
    return masq_socks_run(o);
  case MASQ_CMD_HTTP_PROXY:
    return masq_httpproxy_run(o);
  case MASQ_CMD_GENCERT:
    if (masq_gencert(o, err, sizeof(err)) == 0) return 0;
    fprintf(stderr, "masq gencert: %s\n", err);
    return 1;
  }
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 1 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("masq %s\n", MASQ_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
    if (strcmp(argv[1], subcommands[i].name) != 0) continue;
    static masq_opts o; /* large (paths, tokens): keep it off the stack */
    char err[512];
    masq_opts_init(&o, subcommands[i].cmd);
    int rv = masq_opts_parse(&o, argc - 2, argv + 2, err, sizeof(err));
    if (rv == 1) return 0;
    if (rv < 0) {
      fprintf(stderr, "masq %s: %s\n", subcommands[i].name, err);
      return 2;
    }
    masq_log_tag = subcommands[i].name;
    masq_log_level = MASQ_LOG_INFO + o.verbose;
    if (masq_log_level > MASQ_LOG_DEBUG) masq_log_level = MASQ_LOG_DEBUG;
    return run(&o);
  }
  fprintf(stderr, "masq: unknown command '%s' (try 'masq --help')\n", argv[1]);
  return 2;
}
