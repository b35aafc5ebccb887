/* Every setting of every subcommand, filled alike from the config file
 * and the command line (the file first, then flags on top), from one
 * table of options (name, type, bounds, help) in options.c. */
#ifndef MASQ_APP_OPTIONS_H
#define MASQ_APP_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/addr.h"

#define MASQ_PATH_MAX 4096
#define MASQ_MAX_TOKENS 64
#define MASQ_MAX_FORWARDS 64
#define MASQ_TOKEN_MAX 256

typedef enum {
  MASQ_CMD_SERVER,
  MASQ_CMD_FORWARD,
  MASQ_CMD_GENCERT,
  MASQ_CMD_CONNECT,
  MASQ_CMD_SOCKS,
  MASQ_CMD_HTTP_PROXY
} masq_cmd;
#define MASQ_NCMDS 6

#define MASQ_MAX_ROUTES 64
#define MASQ_IFNAME_MAX 15 /* IFNAMSIZ - 1 */

typedef struct masq_opts {
  masq_cmd cmd;
  int verbose; /* count of -v */
  char config[MASQ_PATH_MAX];

  /* server; socks and http-proxy listen on TCP */
  char listen[128];  /* ADDR:PORT, default "[::]:443" (socks 127.0.0.1:1080,
                        http-proxy 127.0.0.1:8080) */
  char cert[MASQ_PATH_MAX];
  char key[MASQ_PATH_MAX];
  char tokens[MASQ_MAX_TOKENS][MASQ_TOKEN_MAX + 1];
  size_t ntokens;
  int no_auth;
  int retry; /* always validate client addresses with a QUIC Retry */
  masq_cidr allow[MASQ_POLICY_MAX];
  size_t nallow;
  char udp_template[1024]; /* default MASQ_DEFAULT_UDP_TEMPLATE */
  unsigned idle_timeout;   /* seconds a tunnel may stay silent; default 120 */
  unsigned max_tunnels;    /* per QUIC connection; default 256 */
  unsigned max_conns;      /* per server; default 1024 */
  unsigned connect_timeout; /* seconds for a TCP target to answer; default 10 */
  /* CONNECT-IP (server) */
  masq_cidr pool4, pool6;  /* address pools; family 0 = none */
  int nat;                 /* set up forwarding + masquerading, undo on exit */
  int client_to_client;    /* let tunnel clients reach each other */
  masq_cidr advertise[MASQ_MAX_ROUTES]; /* routes offered; none = full tunnel */
  size_t nadvertise;

  /* both */
  char cc[8];              /* QUIC congestion control: "bbr" (default) or "cubic" */
  char ip_template[1024];  /* default MASQ_DEFAULT_IP_TEMPLATE */
  char tun[MASQ_IFNAME_MAX + 1]; /* TUN device name */

  /* forward (client) */
  char proxy[1024]; /* https://HOST[:PORT] */
  char token[MASQ_TOKEN_MAX + 1];
  char ca[MASQ_PATH_MAX];
  int insecure;
  masq_fwdspec udp[MASQ_MAX_FORWARDS];
  size_t nudp;
  masq_fwdspec tcp[MASQ_MAX_FORWARDS];
  size_t ntcp;

  /* socks (client): RFC 1929 credentials for local access, both or none */
  char socks_user[256];
  char socks_password[256];

  /* connect (client) */
  masq_cidr routes[MASQ_MAX_ROUTES];   /* what goes into the tunnel; none = all */
  size_t nroutes;
  masq_cidr excludes[MASQ_MAX_ROUTES]; /* kept out of it */
  size_t nexcludes;
  masq_cidr request_addr[2];           /* ADDRESS_REQUEST preferences */
  size_t nrequest_addr;
  masq_cidr dns[4];                    /* resolvers while up (plen ignored) */
  size_t ndns;
  char target[300];                    /* scope: "*" (default), host, IP or prefix */
  char ipproto[8];                     /* scope: "*" (default) or 0..255 */
  unsigned fwmark;                     /* marks masq's own packets; default 0x6d71 */

  /* gencert */
  char out_cert[MASQ_PATH_MAX];
  char out_key[MASQ_PATH_MAX];
  char names[8][256]; /* subjectAltNames (DNS names or IP literals) */
  size_t nnames;
  unsigned days;
} masq_opts;

/* Defaults for cmd. */
void masq_opts_init(masq_opts *o, masq_cmd cmd);

/* Parses argv (after the subcommand name). A --config FILE is loaded
 * first wherever it stands, then the flags apply on top. Returns 0, 1 if
 * --help was printed (caller exits 0), or -1 with a one-line reason in
 * err naming the bad flag or config line. */
int masq_opts_parse(masq_opts *o, int argc, char **argv, char *err, size_t errcap);

/* Loads an INI file (WireGuard style, [Server] / [Forward] sections with
 * the same names as the long flags, e.g. "Token = x", "Allow = 10.0.0.0/8",
 * "UDP = 5353:1.1.1.1:53"). Returns 0 or -1 with "FILE:LINE: reason". */
int masq_opts_load_file(masq_opts *o, const char *path, char *err, size_t errcap);

/* Same from a string (for tests and the fuzzer). */
int masq_opts_load_string(masq_opts *o, const char *text, char *err, size_t errcap);

/* Prints the subcommand's usage, generated from the option table. */
void masq_opts_usage(masq_cmd cmd, FILE *f);

#endif
