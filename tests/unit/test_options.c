/* The option table seen from the user: flags in both forms, repeats, the
 * config file under and with flags, and every class of error message. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/options.h"

static masq_opts o; /* large: kept off the stack */
static char err[512];

/* Parses a NULL-terminated list of arguments for cmd. */
static int parse(masq_cmd cmd, ...) {
  char *argv[64];
  int argc = 0;
  va_list ap;
  va_start(ap, cmd);
  for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 63;) argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  masq_opts_init(&o, cmd);
  err[0] = '\0';
  return masq_opts_parse(&o, argc, argv, err, sizeof(err));
}

#define SRV_OK "--cert", "c.pem", "--key", "k.pem", "--token", "tok"
#define FWD_OK "--proxy", "https://proxy.example", "--udp", "5353:1.1.1.1:53"

#define assert_err(rc, text)       \
  do {                             \
    assert_int_equal((rc), -1);    \
    assert_string_equal(err, text); \
  } while (0)

static void test_server_defaults(void **state) {
  (void)state;
  assert_int_equal(parse(MASQ_CMD_SERVER, SRV_OK, NULL), 0);
  assert_string_equal(o.listen, "[::]:443");
  assert_string_equal(o.cert, "c.pem");
  assert_string_equal(o.key, "k.pem");
  assert_int_equal(o.ntokens, 1);
  assert_string_equal(o.tokens[0], "tok");
  assert_string_equal(o.udp_template, MASQ_DEFAULT_UDP_TEMPLATE);
  assert_int_equal(o.idle_timeout, 120);
  assert_int_equal(o.max_tunnels, 256);
  assert_int_equal(o.max_conns, 1024);
  assert_int_equal(o.no_auth, 0);
  assert_int_equal(o.verbose, 0);
  assert_string_equal(o.cc, "bbr");
}

/* Congestion control: bbr by default on both ends, cubic on request, from
 * a flag or the config file; anything else is refused by name. */
static void test_congestion_control(void **state) {
  (void)state;
  assert_int_equal(parse(MASQ_CMD_FORWARD, FWD_OK, NULL), 0);
  assert_string_equal(o.cc, "bbr");
  assert_int_equal(parse(MASQ_CMD_SERVER, SRV_OK, "--cc", "cubic", NULL), 0);
  assert_string_equal(o.cc, "cubic");
  assert_int_equal(parse(MASQ_CMD_CONNECT, "--proxy", "https://p", "--cc=cubic", NULL), 0);
  assert_string_equal(o.cc, "cubic");
  masq_opts_init(&o, MASQ_CMD_SOCKS);
  assert_int_equal(masq_opts_load_string(&o, "[socks]\nCC = cubic\n", err, sizeof(err)), 0);
  assert_string_equal(o.cc, "cubic");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--cc", "reno", NULL),
             "--cc needs bbr or cubic, got \"reno\"");
  assert_err(parse(MASQ_CMD_GENCERT, "--cc", "bbr", NULL),
             "--cc is for masq server, not masq gencert");
}

static void test_server_all_flags(void **state) {
  (void)state;
  assert_int_equal(parse(MASQ_CMD_SERVER, "--listen", "0.0.0.0:8443", "--cert", "c", "--key", "k",
                         "--no-auth", "--allow", "10.0.0.0/8", "--udp-template",
                         "https://{proxy}/u/{target_host}/{target_port}/", "--idle-timeout", "30",
                         "--max-tunnels", "7", "--max-connections", "9", "-v", NULL),
                   0);
  assert_string_equal(o.listen, "0.0.0.0:8443");
  assert_int_equal(o.no_auth, 1);
  assert_int_equal(o.nallow, 1);
  assert_int_equal(o.allow[0].ip.family, 4);
  assert_int_equal(o.allow[0].plen, 8);
  assert_string_equal(o.udp_template, "https://{proxy}/u/{target_host}/{target_port}/");
  assert_int_equal(o.idle_timeout, 30);
  assert_int_equal(o.max_tunnels, 7);
  assert_int_equal(o.max_conns, 9);
  assert_int_equal(o.verbose, 1);
}

static void test_equals_form(void **state) {
  (void)state;
  assert_int_equal(parse(MASQ_CMD_SERVER, "--listen=[::1]:4433", "--cert=c", "--key=k",
                         "--token=abc==", "--idle-timeout=5", "--allow=fd00::/8", NULL),
                   0);
  assert_string_equal(o.listen, "[::1]:4433");
  assert_string_equal(o.cert, "c");
  assert_string_equal(o.tokens[0], "abc==");
  assert_int_equal(o.idle_timeout, 5);
  assert_int_equal(o.allow[0].ip.family, 6);
  /* A value may itself contain '=' and start with '-'. */
  assert_int_equal(parse(MASQ_CMD_SERVER, "--cert", "-odd", "--key=a=b", "--token", "t", NULL), 0);
  assert_string_equal(o.cert, "-odd");
  assert_string_equal(o.key, "a=b");
}

static void test_repeats(void **state) {
  (void)state;
  assert_int_equal(parse(MASQ_CMD_SERVER, SRV_OK, "--token", "b", "--token=c", "--allow",
                         "192.168.0.0/16", "--allow", "127.0.0.1", "-v", "-vv", "--verbose",
                         "--listen", "[::]:1", "--listen", "[::]:2", NULL),
                   0);
  assert_int_equal(o.ntokens, 3);
  assert_string_equal(o.tokens[1], "b");
  assert_string_equal(o.tokens[2], "c");
  assert_int_equal(o.nallow, 2);
  assert_int_equal(o.allow[1].plen, 32);
  assert_int_equal(o.verbose, 4);
  assert_string_equal(o.listen, "[::]:2"); /* a scalar: the last one wins */
}

static void test_forward(void **state) {
  (void)state;
  assert_int_equal(parse(MASQ_CMD_FORWARD, "--proxy", "https://proxy.example:4433", "--udp",
                         "5353:1.1.1.1:53", "--udp=0.0.0.0:5354:[2606:4700::1111]:53", "--token",
                         "t0k", "--ca", "ca.pem", "-v", NULL),
                   0);
  assert_string_equal(o.proxy, "https://proxy.example:4433");
  assert_int_equal(o.nudp, 2);
  assert_string_equal(o.udp[0].bind, "127.0.0.1");
  assert_int_equal(o.udp[0].port, 5353);
  assert_string_equal(o.udp[0].host, "1.1.1.1");
  assert_int_equal(o.udp[0].hostport, 53);
  assert_string_equal(o.udp[1].bind, "0.0.0.0");
  assert_string_equal(o.udp[1].host, "2606:4700::1111");
  assert_string_equal(o.token, "t0k");
  assert_string_equal(o.ca, "ca.pem");
  assert_int_equal(o.insecure, 0);
  assert_int_equal(parse(MASQ_CMD_FORWARD, FWD_OK, "--insecure", NULL), 0);
  assert_int_equal(o.insecure, 1);
  assert_int_equal(parse(MASQ_CMD_FORWARD, "--proxy=https://[2001:db8::1]/", "--udp", "1:h:2",
                         NULL),
                   0);
}

static void test_gencert(void **state) {
  (void)state;
  assert_int_equal(parse(MASQ_CMD_GENCERT, NULL), 0);
  assert_string_equal(o.out_cert, "cert.pem");
  assert_string_equal(o.out_key, "key.pem");
  assert_int_equal(o.days, 365);
  assert_int_equal(o.nnames, 1);
  assert_string_equal(o.names[0], "localhost");
  assert_int_equal(parse(MASQ_CMD_GENCERT, "--cert", "a.pem", "--key=b.pem", "--name",
                         "proxy.example", "--name", "192.0.2.7", "--name", "2001:db8::7",
                         "--name", "*.example.org", "--days", "30", NULL),
                   0);
  assert_string_equal(o.out_cert, "a.pem");
  assert_string_equal(o.out_key, "b.pem");
  assert_int_equal(o.nnames, 4);
  assert_string_equal(o.names[2], "2001:db8::7");
  assert_int_equal(o.days, 30);
  assert_string_equal(o.cert, ""); /* the server's fields are untouched */
  assert_err(parse(MASQ_CMD_GENCERT, "--name", "bad_name!", NULL),
             "--name: \"bad_name!\" is not a DNS name or IP address");
  assert_err(parse(MASQ_CMD_GENCERT, "--name", "-a.example", NULL),
             "--name: \"-a.example\" is not a DNS name or IP address");
  assert_err(parse(MASQ_CMD_GENCERT, "--days", "0", NULL), "--days needs N in 1..36500, got \"0\"");
  assert_err(parse(MASQ_CMD_GENCERT, "--name", "a", "--name", "b", "--name", "c", "--name", "d",
                   "--name", "e", "--name", "f", "--name", "g", "--name", "h", "--name", "i",
                   NULL),
             "--name: at most 8 allowed");
  assert_err(parse(MASQ_CMD_GENCERT, "--config", "x", NULL),
             "--config is for masq server, not masq gencert");
}

static void test_help(void **state) {
  (void)state;
  FILE *saved = stdout;
  /* Usage goes to stdout; keep the test log readable. */
  stdout = fopen("/dev/null", "w");
  assert_non_null(stdout);
  assert_int_equal(parse(MASQ_CMD_SERVER, "--help", NULL), 1);
  assert_int_equal(parse(MASQ_CMD_FORWARD, "-h", NULL), 1);
  assert_int_equal(parse(MASQ_CMD_GENCERT, "--help", NULL), 1);
  /* --help wins over mistakes and over a missing config file. */
  assert_int_equal(parse(MASQ_CMD_SERVER, "--bogus", "--config", "/nonexistent", "-vh", NULL), 1);
  fclose(stdout);
  stdout = saved;
  assert_err(parse(MASQ_CMD_SERVER, "--help=1", NULL), "--help takes no value");
}

static void test_usage_text(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  masq_opts_usage(MASQ_CMD_SERVER, f);
  masq_opts_usage(MASQ_CMD_FORWARD, f);
  masq_opts_usage(MASQ_CMD_GENCERT, f);
  assert_int_equal(fclose(f), 0);
  static const char *const want[] = {
      "Usage: masq server", "--listen ADDR:PORT", "--no-auth", "--allow CIDR",
      "--idle-timeout SECONDS", "--max-connections N", "-v, --verbose", "-h, --help",
      "Usage: masq forward", "--proxy https://HOST[:PORT]", "--udp [BIND:]PORT:HOST:HOSTPORT",
      "--ca FILE", "--insecure", "Usage: masq gencert", "--name DNS-or-IP", "--days N",
      "UDPTemplate", "MaxConnections"};
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    if (strstr(buf, want[i]) == NULL) fail_msg("usage lacks %s", want[i]);
  free(buf);
}

static void test_cli_errors(void **state) {
  (void)state;
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--foo", NULL),
             "unknown option --foo (see masq server --help)");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--foo=1", NULL),
             "unknown option --foo (see masq server --help)");
  assert_err(parse(MASQ_CMD_FORWARD, "-x", NULL), "unknown option -x (see masq forward --help)");
  assert_err(parse(MASQ_CMD_SERVER, "--proxy", "https://x", NULL),
             "--proxy is for masq forward, not masq server");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "stray", NULL),
             "unexpected argument \"stray\" (see masq server --help)");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--", "--listen", NULL),
             "unexpected argument \"--listen\" (see masq server --help)");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--listen", NULL),
             "--listen needs a value (ADDR:PORT)");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--no-auth=yes", NULL), "--no-auth takes no value");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--listen", "nope", NULL),
             "--listen needs ADDR:PORT (e.g. [::]:443 or 0.0.0.0:443), got \"nope\"");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--listen", "", NULL),
             "--listen needs ADDR:PORT, got \"\"");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--cert", "a\tb", NULL),
             "--cert: value contains a control character");
}

static void test_cidr_errors(void **state) {
  (void)state;
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--allow", "10.0.0.1/8", NULL),
             "--allow: \"10.0.0.1/8\" is not a CIDR prefix (host bits set; did you mean "
             "10.0.0.0/8?)");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--allow", "fd00::1/8", NULL),
             "--allow: \"fd00::1/8\" is not a CIDR prefix (host bits set; did you mean fd00::/8?)");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--allow", "10.0.0.0/33", NULL),
             "--allow: \"10.0.0.0/33\" is not a CIDR prefix (length must be 0..32)");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--allow", "10.0.0/8", NULL),
             "--allow: \"10.0.0/8\" is not a CIDR prefix (bad address)");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--allow=", NULL), "--allow needs CIDR, got \"\"");
}

static void test_number_errors(void **state) {
  (void)state;
  static const char *const bad[] = {"0", "86401", "-5", "+5", " 5", "5x", "", "0x10",
                                    "99999999999999999999999"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char want[128];
    snprintf(want, sizeof(want), "--idle-timeout needs SECONDS in 1..86400, got \"%s\"", bad[i]);
    if (bad[i][0] == '\0') snprintf(want, sizeof(want), "--idle-timeout needs SECONDS, got \"\"");
    assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--idle-timeout", bad[i], NULL), want);
  }
  assert_int_equal(parse(MASQ_CMD_SERVER, SRV_OK, "--idle-timeout", "86400", NULL), 0);
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--max-tunnels", "65536", NULL),
             "--max-tunnels needs N in 1..65535, got \"65536\"");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--max-connections", "0", NULL),
             "--max-connections needs N in 1..1000000, got \"0\"");
}

static void test_token_errors(void **state) {
  (void)state;
  static const char *const bad[] = {"a b", "=abc", "abc=def", "t\xc3\xa9", "a,b", "a\"b"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(parse(MASQ_CMD_SERVER, SRV_OK, "--token", bad[i], NULL), -1);
    assert_non_null(strstr(err, "is not a valid token (use letters, digits and -._~+/"));
    assert_int_equal(strncmp(err, "--token: \"", 10), 0);
  }
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--token", "t\xc3\xa9", NULL),
             "--token: \"t\\xc3\\xa9\" is not a valid token (use letters, digits and -._~+/ with "
             "optional trailing =)");
  assert_int_equal(parse(MASQ_CMD_SERVER, SRV_OK, "--token", "A-Z.a_z~0+9/==", NULL), 0);
  char longtok[MASQ_TOKEN_MAX + 2];
  memset(longtok, 'a', sizeof(longtok) - 1);
  longtok[sizeof(longtok) - 1] = '\0';
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--token", longtok, NULL),
             "--token: value longer than 256 characters");
  longtok[MASQ_TOKEN_MAX] = '\0';
  assert_int_equal(parse(MASQ_CMD_SERVER, SRV_OK, "--token", longtok, NULL), 0);
  assert_err(parse(MASQ_CMD_FORWARD, FWD_OK, "--token", "x y", NULL),
             "--token: \"x y\" is not a valid token (use letters, digits and -._~+/ with "
             "optional trailing =)");
  /* More tokens than the server keeps. */
  char *argv[2 * MASQ_MAX_TOKENS + 8];
  int argc = 0;
  argv[argc++] = "--cert=c";
  argv[argc++] = "--key=k";
  for (int i = 0; i <= MASQ_MAX_TOKENS; i++) argv[argc++] = "--token=t";
  masq_opts_init(&o, MASQ_CMD_SERVER);
  assert_int_equal(masq_opts_parse(&o, argc, argv, err, sizeof(err)), -1);
  assert_string_equal(err, "--token: at most 64 allowed");
}

static void test_required(void **state) {
  (void)state;
  const char *need = "server needs --cert and --key (masq gencert makes a test pair)";
  assert_err(parse(MASQ_CMD_SERVER, "--token", "t", NULL), need);
  assert_err(parse(MASQ_CMD_SERVER, "--cert", "c", "--token", "t", NULL), need);
  assert_err(parse(MASQ_CMD_SERVER, "--key", "k", "--token", "t", NULL), need);
  assert_err(parse(MASQ_CMD_SERVER, "--cert", "c", "--key", "k", NULL),
             "no tokens: give --token or Token= in the config, or --no-auth to run an open "
             "proxy");
  assert_err(parse(MASQ_CMD_SERVER, SRV_OK, "--no-auth", NULL),
             "--no-auth conflicts with tokens (given by --token or Token=); drop one");
  assert_err(parse(MASQ_CMD_FORWARD, "--udp", "1:h:2", NULL),
             "forward needs --proxy https://HOST[:PORT]");
  assert_err(parse(MASQ_CMD_FORWARD, "--proxy", "https://p", NULL),
             "forward needs at least one --udp or --tcp [BIND:]PORT:HOST:HOSTPORT");
  assert_err(parse(MASQ_CMD_FORWARD, FWD_OK, "--ca", "ca.pem", "--insecure", NULL),
             "--ca and --insecure conflict: --ca verifies the proxy against FILE, --insecure "
             "skips verification; give one");
  assert_err(parse(MASQ_CMD_FORWARD, FWD_OK, "--udp", "127.0.0.1:5353:9.9.9.9:53", NULL),
             "--udp: local 127.0.0.1 port 5353 is forwarded twice");
}

static void test_forward_value_errors(void **state) {
  (void)state;
  assert_err(parse(MASQ_CMD_FORWARD, "--proxy", "https://p", "--udp", "x", NULL),
             "--udp needs [BIND:]PORT:HOST:HOSTPORT, got \"x\"");
  assert_err(parse(MASQ_CMD_FORWARD, "--proxy", "https://p", "--udp", "70000:h:53", NULL),
             "--udp needs [BIND:]PORT:HOST:HOSTPORT, got \"70000:h:53\"");
  static const char *const badproxy[] = {"http://p", "https://", "https:///", "https://p/x",
                                         "https://u@p", "https://p:0", "p:443",
                                         "https://p:99999"};
  for (size_t i = 0; i < sizeof(badproxy) / sizeof(badproxy[0]); i++) {
    char want[128];
    snprintf(want, sizeof(want), "--proxy needs https://HOST[:PORT], got \"%s\"", badproxy[i]);
    assert_err(parse(MASQ_CMD_FORWARD, "--proxy", badproxy[i], NULL), want);
  }
  static const char *const badtmpl[] = {"http://{proxy}/{target_host}/{target_port}/",
                                        "https://{proxy}/{target_host}/",
                                        "https://{proxy}/{target_host}/{target_port",
                                        "https://{proxy}/{target_host}/{target_port}/{nope}"};
  for (size_t i = 0; i < sizeof(badtmpl) / sizeof(badtmpl[0]); i++) {
    assert_int_equal(parse(MASQ_CMD_FORWARD, FWD_OK, "--udp-template", badtmpl[i], NULL), -1);
    assert_int_equal(strncmp(err,
                             "--udp-template needs an https URI template with {target_host} and "
                             "{target_port}, got \"",
                             83),
                     0);
  }
  assert_int_equal(parse(MASQ_CMD_FORWARD, FWD_OK, "--udp-template",
                         "https://{proxy}/masque{?target_host,target_port}", NULL),
                   0);
}

static const char *server_conf =
    "; masq test config\n"
    "[Server]\n"
    "Listen = 127.0.0.1:4433\n"
    "Cert = /etc/masq/cert.pem\n"
    "key=/etc/masq/key.pem\n"
    "Token = fromfile1\n"
    "TOKEN = fromfile2 ; inline comment\n"
    "Allow = 10.0.0.0/8\n"
    "UdpTemplate = https://{proxy}/x/{target_host}/{target_port}/\n"
    "idle-timeout = 60\n"
    "MaxTunnels = 16\n"
    "max_connections = 32\n"
    "\n"
    "[forward]\n"
    "# the other role's keys are checked but not applied\n"
    "Proxy = https://elsewhere.example\n"
    "UDP = 53:9.9.9.9:53\n";

static void test_config_string(void **state) {
  (void)state;
  masq_opts_init(&o, MASQ_CMD_SERVER);
  assert_int_equal(masq_opts_load_string(&o, server_conf, err, sizeof(err)), 0);
  assert_string_equal(o.listen, "127.0.0.1:4433");
  assert_string_equal(o.cert, "/etc/masq/cert.pem");
  assert_string_equal(o.key, "/etc/masq/key.pem");
  assert_int_equal(o.ntokens, 2);
  assert_string_equal(o.tokens[1], "fromfile2");
  assert_int_equal(o.nallow, 1);
  assert_string_equal(o.udp_template, "https://{proxy}/x/{target_host}/{target_port}/");
  assert_int_equal(o.idle_timeout, 60);
  assert_int_equal(o.max_tunnels, 16);
  assert_int_equal(o.max_conns, 32);
  assert_string_equal(o.proxy, "");
  assert_int_equal(o.nudp, 0);

  masq_opts_init(&o, MASQ_CMD_FORWARD);
  assert_int_equal(masq_opts_load_string(&o, server_conf, err, sizeof(err)), 0);
  assert_string_equal(o.proxy, "https://elsewhere.example");
  assert_int_equal(o.nudp, 1);
  assert_int_equal(o.ntokens, 0);
  assert_string_equal(o.listen, "[::]:443");

  masq_opts_init(&o, MASQ_CMD_FORWARD);
  assert_int_equal(masq_opts_load_string(&o,
                                         "[FORWARD]\r\nInsecure = yes\r\nCA = /x/ca.pem\r\n"
                                         "Token = abc\r\nudp-template = "
                                         "https://{proxy}/{target_host}/{target_port}\r\n",
                                         err, sizeof(err)),
                   0);
  assert_int_equal(o.insecure, 1);
  assert_string_equal(o.ca, "/x/ca.pem");
  assert_string_equal(o.token, "abc");

  /* Indented lines are keys of their own, not continuations. */
  masq_opts_init(&o, MASQ_CMD_SERVER);
  assert_int_equal(masq_opts_load_string(&o,
                                         "[Server]\n  Listen = [::]:8\n\tCert = c\n"
                                         "    Token = a\n    ; comment\n  Token = b\n",
                                         err, sizeof(err)),
                   0);
  assert_string_equal(o.listen, "[::]:8");
  assert_string_equal(o.cert, "c");
  assert_int_equal(o.ntokens, 2);

  static const char *const bools[][2] = {{"true", "1"}, {"On", "1"}, {"1", "1"},
                                         {"false", "0"}, {"NO", "0"}, {"off", "0"}};
  for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
    char text[64];
    snprintf(text, sizeof(text), "[Server]\nNoAuth = %s\n", bools[i][0]);
    masq_opts_init(&o, MASQ_CMD_SERVER);
    o.no_auth = 1 - (bools[i][1][0] - '0');
    assert_int_equal(masq_opts_load_string(&o, text, err, sizeof(err)), 0);
    assert_int_equal(o.no_auth, bools[i][1][0] - '0');
  }
}

/* Longer lines than inih's line buffer still load whole. */
static void test_config_long_lines(void **state) {
  (void)state;
  char path[1200], text[1400];
  memset(path, 'p', sizeof(path));
  path[0] = '/';
  path[sizeof(path) - 1] = '\0';
  snprintf(text, sizeof(text), "[Server]\n  Cert =   %s   ; comment\nKey = k\n", path);
  masq_opts_init(&o, MASQ_CMD_SERVER);
  assert_int_equal(masq_opts_load_string(&o, text, err, sizeof(err)), 0);
  assert_string_equal(o.cert, path);
  assert_string_equal(o.key, "k");

  static char huge[MASQ_PATH_MAX + 64];
  memset(huge, 'a', sizeof(huge));
  memcpy(huge, "[Server]\nCert = ", 16);
  memcpy(huge + sizeof(huge) - 2, "\n", 2);
  masq_opts_init(&o, MASQ_CMD_SERVER);
  assert_int_equal(masq_opts_load_string(&o, huge, err, sizeof(err)), -1);
  assert_string_equal(err, "<config>:2: Cert: value longer than 4096 characters");

  /* A long comment is fine, a long line of anything else is not. */
  memset(huge, '#', sizeof(huge));
  memcpy(huge + sizeof(huge) - 2, "\n", 2);
  assert_int_equal(masq_opts_load_string(&o, huge, err, sizeof(err)), 0);
  memset(huge, 'x', sizeof(huge));
  memcpy(huge, "[Server]\n[", 10);
  memcpy(huge + sizeof(huge) - 2, "\n", 2);
  assert_int_equal(masq_opts_load_string(&o, huge, err, sizeof(err)), -1);
  assert_string_equal(err, "<config>:2: line too long");
}

static void expect_conf_err(masq_cmd cmd, const char *text, const char *want) {
  masq_opts_init(&o, cmd);
  assert_int_equal(masq_opts_load_string(&o, text, err, sizeof(err)), -1);
  assert_string_equal(err, want);
}

static void test_config_errors(void **state) {
  (void)state;
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\nListen = [::]:1\nProxy = https://p\n",
                  "<config>:3: unknown key 'Proxy' in [Server]");
  expect_conf_err(MASQ_CMD_FORWARD, "[Server]\nListen = [::]:1\nProxy = https://p\n",
                  "<config>:3: unknown key 'Proxy' in [Server]");
  expect_conf_err(MASQ_CMD_FORWARD, "[Forward]\nNoAuth = 1\n",
                  "<config>:2: unknown key 'NoAuth' in [Forward]");
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\nVerbose = 1\n",
                  "<config>:2: unknown key 'Verbose' in [Server]");
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\nConfig = x\n",
                  "<config>:2: unknown key 'Config' in [Server]");
  expect_conf_err(MASQ_CMD_SERVER, "Token = x\n",
                  "<config>:1: 'Token' is outside a section; put it under [Server], "
                  "[Forward] or [Connect]");
  expect_conf_err(MASQ_CMD_SERVER, "[Interface]\nPrivateKey = x\n",
                  "<config>:2: unknown section [Interface] (use [Server], [Forward] or [Connect])");
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\n\nAllow = 10.0.0.1/8\n",
                  "<config>:3: Allow: \"10.0.0.1/8\" is not a CIDR prefix (host bits set; did "
                  "you mean 10.0.0.0/8?)");
  expect_conf_err(MASQ_CMD_FORWARD, "[Forward]\nUDP = x\n",
                  "<config>:2: UDP needs [BIND:]PORT:HOST:HOSTPORT, got \"x\"");
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\nNoAuth = maybe\n",
                  "<config>:2: NoAuth needs true or false, got \"maybe\"");
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\nIdleTimeout = 0\n",
                  "<config>:2: IdleTimeout needs SECONDS in 1..86400, got \"0\"");
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\nToken =\n",
                  "<config>:2: Token needs TOKEN, got \"\"");
  /* Syntax errors come from inih; the first error of either kind wins. */
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\nListen\nBogus = 1\n",
                  "<config>:2: expected [Section] or Key = Value");
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\nBogus = 1\nListen\n",
                  "<config>:2: unknown key 'Bogus' in [Server]");
  expect_conf_err(MASQ_CMD_SERVER, "[Server\n", "<config>:1: expected [Section] or Key = Value");
  /* Hostile bytes are escaped, not echoed. */
  expect_conf_err(MASQ_CMD_SERVER, "[Server]\n\x1b[2J = 1\n",
                  "<config>:2: unknown key '\\x1b[2J' in [Server]");
}

static char tmpdir[64];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

static void test_config_and_flags(void **state) {
  (void)state;
  char conf[128], bad[128], want[256];
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/masq-opts-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  snprintf(conf, sizeof(conf), "%s/server.conf", tmpdir);
  snprintf(bad, sizeof(bad), "%s/bad.conf", tmpdir);
  write_file(conf, server_conf);
  write_file(bad, "[Server]\nCert = c\nKey = k\nToken = a\nIdleTimeout = soon\n");

  /* --config is loaded first wherever it stands; flags override scalars
   * and append to lists. */
  assert_int_equal(parse(MASQ_CMD_SERVER, "--listen", "[::]:9", "--token", "cli", "--config",
                         conf, "--allow", "fd00::/8", NULL),
                   0);
  assert_string_equal(o.config, conf);
  assert_string_equal(o.listen, "[::]:9");
  assert_string_equal(o.cert, "/etc/masq/cert.pem");
  assert_int_equal(o.ntokens, 3);
  assert_string_equal(o.tokens[0], "fromfile1");
  assert_string_equal(o.tokens[1], "fromfile2");
  assert_string_equal(o.tokens[2], "cli");
  assert_int_equal(o.nallow, 2);
  assert_int_equal(o.allow[1].ip.family, 6);
  assert_int_equal(o.idle_timeout, 60);

  char eqform[160];
  snprintf(eqform, sizeof(eqform), "--config=%s", conf);
  assert_int_equal(parse(MASQ_CMD_SERVER, eqform, "--idle-timeout", "7", NULL), 0);
  assert_int_equal(o.idle_timeout, 7);
  assert_int_equal(o.ntokens, 2);

  snprintf(want, sizeof(want), "%s:5: IdleTimeout needs SECONDS in 1..86400, got \"soon\"", bad);
  assert_err(parse(MASQ_CMD_SERVER, "--config", bad, NULL), want);
  /* The config is read before the flags even when it comes last. */
  assert_err(parse(MASQ_CMD_SERVER, "--idle-timeout", "3", "--config", bad, NULL), want);

  snprintf(want, sizeof(want), "%s/missing.conf: cannot open: No such file or directory", tmpdir);
  char missing[160];
  snprintf(missing, sizeof(missing), "%s/missing.conf", tmpdir);
  assert_err(parse(MASQ_CMD_SERVER, "--config", missing, NULL), want);
  snprintf(want, sizeof(want), "%s: cannot read: Is a directory", tmpdir);
  assert_err(parse(MASQ_CMD_SERVER, "--config", tmpdir, NULL), want);
  assert_err(parse(MASQ_CMD_SERVER, "--config", conf, "--config", conf, NULL),
             "--config given twice; give one file");
  assert_err(parse(MASQ_CMD_SERVER, "--config", NULL), "--config needs a value (FILE)");

  /* The forwarder reads its own section of the same file. */
  assert_int_equal(parse(MASQ_CMD_FORWARD, "--config", conf, NULL), 0);
  assert_string_equal(o.proxy, "https://elsewhere.example");
  assert_string_equal(o.udp[0].host, "9.9.9.9");

  assert_int_equal(unlink(conf), 0);
  assert_int_equal(unlink(bad), 0);
  assert_int_equal(rmdir(tmpdir), 0);
}

/* masq forward --tcp, masq socks and masq http-proxy: defaults, flags,
 * the checks that pair or conflict, and their config sections. */
static void test_tcp_front_ends(void **state) {
  (void)state;
  assert_int_equal(parse(MASQ_CMD_FORWARD, "--proxy", "https://p", "--tcp", "2222:host.example:22",
                         "--tcp", "[::1]:8443:[2001:db8::1]:443", NULL),
                   0);
  assert_int_equal(o.nudp, 0);
  assert_int_equal(o.ntcp, 2);
  assert_string_equal(o.tcp[0].bind, "127.0.0.1");
  assert_int_equal(o.tcp[0].port, 2222);
  assert_string_equal(o.tcp[0].host, "host.example");
  assert_string_equal(o.tcp[1].bind, "::1");
  assert_string_equal(o.tcp[1].host, "2001:db8::1");
  /* The same local port for UDP and TCP is fine; twice for TCP is not. */
  assert_int_equal(parse(MASQ_CMD_FORWARD, FWD_OK, "--tcp", "5353:h:1", NULL), 0);
  assert_err(parse(MASQ_CMD_FORWARD, FWD_OK, "--tcp", "5354:h:1", "--tcp", "5354:g:2", NULL),
             "--tcp: local 127.0.0.1 port 5354 is forwarded twice");
  assert_err(parse(MASQ_CMD_FORWARD, FWD_OK, "--tcp", "nope", NULL),
             "--tcp needs [BIND:]PORT:HOST:HOSTPORT, got \"nope\"");

  assert_int_equal(parse(MASQ_CMD_SOCKS, "--proxy", "https://p", NULL), 0);
  assert_string_equal(o.listen, "127.0.0.1:1080");
  assert_string_equal(o.socks_user, "");
  assert_int_equal(parse(MASQ_CMD_SOCKS, "--proxy", "https://p", "--listen", "[::1]:1081",
                         "--user", "alice", "--password", "pw", "--token", "t", "--insecure",
                         "--udp-template", "https://{proxy}/u/{target_host}/{target_port}/",
                         NULL),
                   0);
  assert_string_equal(o.listen, "[::1]:1081");
  assert_string_equal(o.socks_user, "alice");
  assert_string_equal(o.socks_password, "pw");
  assert_string_equal(o.udp_template, "https://{proxy}/u/{target_host}/{target_port}/");
  assert_err(parse(MASQ_CMD_SOCKS, NULL), "socks needs --proxy https://HOST[:PORT]");
  assert_err(parse(MASQ_CMD_SOCKS, "--proxy", "https://p", "--user", "a", NULL),
             "--user and --password go together: give both or neither");
  assert_err(parse(MASQ_CMD_SOCKS, "--proxy", "https://p", "--password", "a", NULL),
             "--user and --password go together: give both or neither");
  assert_err(parse(MASQ_CMD_SOCKS, "--proxy", "https://p", "--listen", "localhost", NULL),
             "--listen needs ADDR:PORT (e.g. [::]:443 or 0.0.0.0:443), got \"localhost\"");
  assert_err(parse(MASQ_CMD_SOCKS, "--proxy", "https://p", "--tcp", "1:h:2", NULL),
             "--tcp is for masq forward, not masq socks");

  assert_int_equal(parse(MASQ_CMD_HTTP_PROXY, "--proxy", "https://p", NULL), 0);
  assert_string_equal(o.listen, "127.0.0.1:8080");
  assert_err(parse(MASQ_CMD_HTTP_PROXY, "--proxy", "https://p", "--user", "a", NULL),
             "--user is for masq socks, not masq http-proxy");
  assert_err(parse(MASQ_CMD_HTTP_PROXY, "--proxy", "https://p", "--ca", "c", "--insecure", NULL),
             "--ca and --insecure conflict: --ca verifies the proxy against FILE, --insecure "
             "skips verification; give one");

  static const char conf[] = "[Socks]\nProxy = https://s.example\nListen = 0.0.0.0:1090\n"
                             "User = bob\nPassword = pw2\n"
                             "[HTTPProxy]\nProxy = https://h.example\nListen = 127.0.0.1:3128\n"
                             "[Forward]\nProxy = https://f.example\nTCP = 2200:h:22\n";
  masq_opts_init(&o, MASQ_CMD_SOCKS);
  assert_int_equal(masq_opts_load_string(&o, conf, err, sizeof(err)), 0);
  assert_string_equal(o.proxy, "https://s.example");
  assert_string_equal(o.listen, "0.0.0.0:1090");
  assert_string_equal(o.socks_user, "bob");
  masq_opts_init(&o, MASQ_CMD_HTTP_PROXY);
  assert_int_equal(masq_opts_load_string(&o, conf, err, sizeof(err)), 0);
  assert_string_equal(o.proxy, "https://h.example");
  assert_string_equal(o.listen, "127.0.0.1:3128");
  masq_opts_init(&o, MASQ_CMD_FORWARD);
  assert_int_equal(masq_opts_load_string(&o, conf, err, sizeof(err)), 0);
  assert_int_equal(o.ntcp, 1);
  assert_int_equal(o.tcp[0].hostport, 22);
  masq_opts_init(&o, MASQ_CMD_HTTP_PROXY);
  assert_int_equal(masq_opts_load_string(&o, "[HTTPProxy]\nUser = x\n", err, sizeof(err)), -1);
  assert_string_equal(err, "<config>:2: unknown key 'User' in [HTTPProxy]");

  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  masq_opts_usage(MASQ_CMD_SOCKS, f);
  masq_opts_usage(MASQ_CMD_HTTP_PROXY, f);
  masq_opts_usage(MASQ_CMD_FORWARD, f);
  assert_int_equal(fclose(f), 0);
  static const char *const want[] = {"Usage: masq socks", "--user NAME", "--password PW",
                                     "127.0.0.1:1080", "[Socks]", "Usage: masq http-proxy",
                                     "127.0.0.1:8080", "[HTTPProxy]",
                                     "--tcp [BIND:]PORT:HOST:HOSTPORT"};
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    if (strstr(buf, want[i]) == NULL) fail_msg("usage lacks %s", want[i]);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_server_defaults),   cmocka_unit_test(test_server_all_flags),
      cmocka_unit_test(test_equals_form),       cmocka_unit_test(test_repeats),
      cmocka_unit_test(test_forward),           cmocka_unit_test(test_gencert),
      cmocka_unit_test(test_help),              cmocka_unit_test(test_usage_text),
      cmocka_unit_test(test_cli_errors),        cmocka_unit_test(test_cidr_errors),
      cmocka_unit_test(test_number_errors),     cmocka_unit_test(test_token_errors),
      cmocka_unit_test(test_required),          cmocka_unit_test(test_forward_value_errors),
      cmocka_unit_test(test_config_string),     cmocka_unit_test(test_config_long_lines),
      cmocka_unit_test(test_config_errors),     cmocka_unit_test(test_config_and_flags),
      cmocka_unit_test(test_tcp_front_ends),    cmocka_unit_test(test_congestion_control),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
