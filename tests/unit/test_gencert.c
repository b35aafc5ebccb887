/* masq gencert output as both sides use it: the server loads the pair,
 * and a client that trusts the certificate (--ca cert.pem) accepts it for
 * each of its names, in a trust-list check and in a real TLS handshake. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "app/gencert.h"
#include "app/options.h"
#include "io/tls.h"

static char dir[64];
static char cert[128], key[128], cert2[128], key2[128], junk[128];
static masq_opts o;
static char err[512];

static void gen(const char *c, const char *k, const char *const *names, size_t n) {
  masq_opts_init(&o, MASQ_CMD_GENCERT);
  snprintf(o.out_cert, sizeof(o.out_cert), "%s", c);
  snprintf(o.out_key, sizeof(o.out_key), "%s", k);
  for (size_t i = 0; i < n; i++) snprintf(o.names[i], sizeof(o.names[i]), "%s", names[i]);
  o.nnames = n;
  err[0] = '\0';
  if (masq_gencert(&o, err, sizeof(err)) != 0) fail_msg("gencert: %s", err);
}

static int setup(void **state) {
  (void)state;
  static const char *const names[] = {"localhost", "127.0.0.1", "::1", "proxy.example"};
  snprintf(dir, sizeof(dir), "/tmp/masq-gencert-XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
  snprintf(key, sizeof(key), "%s/key.pem", dir);
  snprintf(cert2, sizeof(cert2), "%s/cert2.pem", dir);
  snprintf(key2, sizeof(key2), "%s/key2.pem", dir);
  snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
  FILE *f = fopen(junk, "w");
  if (f == NULL || fputs("not a certificate\n", f) < 0 || fclose(f) != 0) return -1;
  gen(cert, key, names, 4);
  gen(cert2, key2, NULL, 0); /* default name only */
  return 0;
}

static int teardown(void **state) {
  (void)state;
  const char *files[] = {cert, key, cert2, key2, junk};
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) unlink(files[i]);
  return rmdir(dir);
}

static void test_files(void **state) {
  (void)state;
  struct stat st;
  assert_int_equal(stat(key, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(stat(cert, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0644);
}

static gnutls_x509_crt_t load_crt(const char *path) {
  gnutls_datum_t d;
  gnutls_x509_crt_t crt;
  assert_int_equal(gnutls_load_file(path, &d), 0);
  assert_int_equal(gnutls_x509_crt_init(&crt), 0);
  assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
  gnutls_free(d.data);
  return crt;
}

/* Verifies the certificate with itself as the only trust anchor, as a
 * client given --ca would, for one DNS name or raw IP address. */
static unsigned verify_self(const char *path, gnutls_vdata_types_t type, const void *name,
                            unsigned size) {
  gnutls_x509_trust_list_t tl;
  gnutls_x509_crt_t anchor = load_crt(path), peer = load_crt(path);
  gnutls_typed_vdata_st vd[2] = {
      {.type = type, .data = (unsigned char *)name, .size = size},
      {.type = GNUTLS_DT_KEY_PURPOSE_OID, .data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER}};
  unsigned status = ~0u;
  assert_int_equal(gnutls_x509_trust_list_init(&tl, 0), 0);
  assert_int_equal(gnutls_x509_trust_list_add_cas(tl, &anchor, 1, 0), 1); /* takes anchor */
  assert_int_equal(gnutls_x509_trust_list_verify_crt2(tl, &peer, 1, vd, 2, 0, &status, NULL), 0);
  gnutls_x509_trust_list_deinit(tl, 1);
  gnutls_x509_crt_deinit(peer);
  return status;
}

static void test_verify_against_itself(void **state) {
  (void)state;
  const unsigned char v4[4] = {127, 0, 0, 1};
  unsigned char v6[16];
  assert_int_equal(inet_pton(AF_INET6, "::1", v6), 1);
  assert_int_equal(verify_self(cert, GNUTLS_DT_DNS_HOSTNAME, "localhost", 0), 0);
  assert_int_equal(verify_self(cert, GNUTLS_DT_DNS_HOSTNAME, "proxy.example", 0), 0);
  assert_int_equal(verify_self(cert, GNUTLS_DT_IP_ADDRESS, v4, 4), 0);
  assert_int_equal(verify_self(cert, GNUTLS_DT_IP_ADDRESS, v6, 16), 0);
  assert_int_not_equal(verify_self(cert, GNUTLS_DT_DNS_HOSTNAME, "other.example", 0), 0);
  /* An IP literal is not a DNS SAN, and the default cert has only localhost. */
  assert_int_not_equal(verify_self(cert2, GNUTLS_DT_IP_ADDRESS, v4, 4), 0);
  assert_int_equal(verify_self(cert2, GNUTLS_DT_DNS_HOSTNAME, "localhost", 0), 0);
  /* Not a CA: it vouches for itself only. */
  gnutls_x509_crt_t crt = load_crt(cert);
  unsigned critical;
  assert_int_equal(gnutls_x509_crt_get_ca_status(crt, &critical), 0);
  assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, NULL), GNUTLS_PK_ECDSA);
  gnutls_x509_crt_deinit(crt);
}

/* Runs both ends of a TLS handshake over a socketpair in one thread. */
static int handshake(gnutls_certificate_credentials_t sc, gnutls_certificate_credentials_t cc,
                     const char *host, int verify) {
  int sv[2];
  gnutls_session_t s, c;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  for (int i = 0; i < 2; i++) assert_int_equal(fcntl(sv[i], F_SETFL, O_NONBLOCK), 0);
  assert_int_equal(gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK), 0);
  assert_int_equal(gnutls_init(&c, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
  assert_int_equal(gnutls_set_default_priority(s), 0);
  assert_int_equal(gnutls_set_default_priority(c), 0);
  assert_int_equal(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, sc), 0);
  assert_int_equal(gnutls_credentials_set(c, GNUTLS_CRD_CERTIFICATE, cc), 0);
  if (verify) gnutls_session_set_verify_cert(c, host, 0);
  gnutls_transport_set_int(s, sv[0]);
  gnutls_transport_set_int(c, sv[1]);
  int rs = GNUTLS_E_AGAIN, rc = GNUTLS_E_AGAIN;
  for (int i = 0; i < 1000 && (rs != 0 || rc != 0); i++) {
    if (rs == GNUTLS_E_AGAIN || rs == GNUTLS_E_INTERRUPTED) rs = gnutls_handshake(s);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) rc = gnutls_handshake(c);
    if ((rs < 0 && gnutls_error_is_fatal(rs)) || (rc < 0 && gnutls_error_is_fatal(rc))) break;
  }
  gnutls_deinit(s);
  gnutls_deinit(c);
  close(sv[0]);
  close(sv[1]);
  return rc;
}

static void test_handshake(void **state) {
  (void)state;
  gnutls_certificate_credentials_t sc = masq_tls_server_creds(cert, key, err, sizeof(err));
  if (sc == NULL) fail_msg("server creds: %s", err);
  gnutls_certificate_credentials_t cc = masq_tls_client_creds(cert, 0, err, sizeof(err));
  if (cc == NULL) fail_msg("client creds: %s", err);
  assert_int_equal(handshake(sc, cc, "localhost", 1), 0);
  assert_int_equal(handshake(sc, cc, "127.0.0.1", 1), 0);
  assert_int_equal(handshake(sc, cc, "wrong.example", 1), GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR);
  gnutls_certificate_free_credentials(cc);

  /* Trusting another self-signed certificate must fail... */
  cc = masq_tls_client_creds(cert2, 0, err, sizeof(err));
  assert_non_null(cc);
  assert_int_equal(handshake(sc, cc, "localhost", 1), GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR);
  gnutls_certificate_free_credentials(cc);
  /* ...unless verification is off (--insecure). */
  cc = masq_tls_client_creds(NULL, 1, err, sizeof(err));
  assert_non_null(cc);
  assert_int_equal(handshake(sc, cc, "localhost", 0), 0);
  gnutls_certificate_free_credentials(cc);
  gnutls_certificate_free_credentials(sc);
}

static void expect_fail_mentioning(gnutls_certificate_credentials_t creds, const char *what) {
  if (creds != NULL) {
    gnutls_certificate_free_credentials(creds);
    fail_msg("expected an error mentioning %s", what);
  }
  if (strstr(err, what) == NULL) fail_msg("error \"%s\" does not mention %s", err, what);
}

static void test_errors(void **state) {
  (void)state;
  char missing[160], want[512];
  snprintf(missing, sizeof(missing), "%s/missing.pem", dir);

  snprintf(want, sizeof(want), "cert %s: cannot open: No such file or directory", missing);
  expect_fail_mentioning(masq_tls_server_creds(missing, key, err, sizeof(err)), want);
  snprintf(want, sizeof(want), "key %s: cannot open: No such file or directory", missing);
  expect_fail_mentioning(masq_tls_server_creds(cert, missing, err, sizeof(err)), want);
  snprintf(want, sizeof(want), "cert %s: no PEM certificate", junk);
  expect_fail_mentioning(masq_tls_server_creds(junk, key, err, sizeof(err)), want);
  snprintf(want, sizeof(want), "key %s: no PEM private key", cert);
  expect_fail_mentioning(masq_tls_server_creds(cert, cert, err, sizeof(err)), want);
  snprintf(want, sizeof(want), "key %s is not the key of cert %s", key2, cert);
  expect_fail_mentioning(masq_tls_server_creds(cert, key2, err, sizeof(err)), want);
  snprintf(want, sizeof(want), "cert %s: cannot read: Is a directory", dir);
  expect_fail_mentioning(masq_tls_server_creds(dir, key, err, sizeof(err)), want);

  snprintf(want, sizeof(want), "CA %s: cannot open", missing);
  expect_fail_mentioning(masq_tls_client_creds(missing, 0, err, sizeof(err)), want);
  snprintf(want, sizeof(want), "CA %s: no PEM certificate in it", junk);
  expect_fail_mentioning(masq_tls_client_creds(junk, 0, err, sizeof(err)), want);

  /* gencert never replaces a file, and leaves no half pair behind. */
  masq_opts_init(&o, MASQ_CMD_GENCERT);
  snprintf(o.out_cert, sizeof(o.out_cert), "%s", cert);
  snprintf(o.out_key, sizeof(o.out_key), "%s/fresh-key.pem", dir);
  assert_int_equal(masq_gencert(&o, err, sizeof(err)), -1);
  snprintf(want, sizeof(want), "%s already exists; remove it or choose another file", cert);
  assert_string_equal(err, want);
  assert_int_equal(access(o.out_key, F_OK), -1);
  snprintf(o.out_key, sizeof(o.out_key), "%s", cert);
  assert_int_equal(masq_gencert(&o, err, sizeof(err)), -1);
  snprintf(want, sizeof(want), "--cert and --key both name %s; give two files", cert);
  assert_string_equal(err, want);
  snprintf(o.out_key, sizeof(o.out_key), "%s/no/such/dir/key.pem", dir);
  assert_int_equal(masq_gencert(&o, err, sizeof(err)), -1);
  snprintf(want, sizeof(want), "cannot create %s/no/such/dir/key.pem: No such file or directory",
           dir);
  assert_string_equal(err, want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_files),
      cmocka_unit_test(test_verify_against_itself),
      cmocka_unit_test(test_handshake),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
