/* Certificate credentials. Files are read here rather than by GnuTLS's
 * *_file functions so a failure can say which file and give errno's
 * reason; GnuTLS would only report "Error while reading file". */
#include "io/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>

#include "io/log.h"

#define PEM_MAX (1u << 20) /* far above any real chain; bounds a wrong path to /dev/zero */

/* Reads a whole file into d (gnutls_free it, or wipe_free for keys). */
static int read_file(const char *what, const char *path, gnutls_datum_t *d, char *err,
                     size_t cap) {
  FILE *f = fopen(path, "re");
  d->data = NULL;
  d->size = 0;
  if (f == NULL) return masq_errf(err, cap, "%s %s: cannot open: %s", what, path, strerror(errno));
  unsigned char *buf = gnutls_malloc(PEM_MAX + 1);
  if (buf == NULL) {
    fclose(f);
    return masq_errf(err, cap, "%s %s: out of memory", what, path);
  }
  size_t n = fread(buf, 1, PEM_MAX + 1, f);
  int e = ferror(f) ? (errno ? errno : EIO) : 0;
  fclose(f);
  if (e != 0 || n > PEM_MAX || n == 0) {
    gnutls_free(buf);
    if (e != 0) return masq_errf(err, cap, "%s %s: cannot read: %s", what, path, strerror(e));
    return masq_errf(err, cap, "%s %s: %s", what, path, n ? "larger than 1 MiB" : "empty file");
  }
  d->data = buf;
  d->size = (unsigned)n;
  return 0;
}

static void wipe_free(gnutls_datum_t *d) {
  if (d->data) {
    gnutls_memset(d->data, 0, d->size);
    gnutls_free(d->data);
  }
  d->data = NULL;
  d->size = 0;
}

/* Parses the chain on its own first so that a bad certificate file is
 * named as such rather than reported as a failure of the pair. */
static int check_cert(const char *path, const gnutls_datum_t *d, char *err, size_t cap) {
  gnutls_x509_crt_t *crts = NULL;
  unsigned n = 0;
  int r = gnutls_x509_crt_list_import2(&crts, &n, d, GNUTLS_X509_FMT_PEM, 0);
  if (r < 0) return masq_errf(err, cap, "cert %s: no PEM certificate: %s", path, gnutls_strerror(r));
  for (unsigned i = 0; i < n; i++) gnutls_x509_crt_deinit(crts[i]);
  gnutls_free(crts);
  if (n == 0) return masq_errf(err, cap, "cert %s: no PEM certificate in it", path);
  return 0;
}

static int check_key(const char *path, const gnutls_datum_t *d, char *err, size_t cap) {
  gnutls_x509_privkey_t k;
  int r = gnutls_x509_privkey_init(&k);
  if (r < 0) return masq_errf(err, cap, "key %s: %s", path, gnutls_strerror(r));
  r = gnutls_x509_privkey_import2(k, d, GNUTLS_X509_FMT_PEM, NULL, 0);
  gnutls_x509_privkey_deinit(k);
  if (r == GNUTLS_E_DECRYPTION_FAILED)
    return masq_errf(err, cap, "key %s: encrypted; masq needs an unencrypted key (mode 0600)", path);
  if (r < 0) return masq_errf(err, cap, "key %s: no PEM private key: %s", path, gnutls_strerror(r));
  return 0;
}

gnutls_certificate_credentials_t masq_tls_server_creds(const char *cert, const char *key,
                                                       char *err, size_t cap) {
  gnutls_certificate_credentials_t creds = NULL;
  gnutls_datum_t cd = {NULL, 0}, kd = {NULL, 0};
  int r;
  if (read_file("cert", cert, &cd, err, cap) != 0 || read_file("key", key, &kd, err, cap) != 0 ||
      check_cert(cert, &cd, err, cap) != 0 || check_key(key, &kd, err, cap) != 0)
    goto out;
  r = gnutls_certificate_allocate_credentials(&creds);
  if (r < 0) {
    creds = NULL;
    masq_errf(err, cap, "TLS credentials: %s", gnutls_strerror(r));
    goto out;
  }
  r = gnutls_certificate_set_x509_key_mem2(creds, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
  if (r < 0) {
    if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
      masq_errf(err, cap, "key %s is not the key of cert %s", key, cert);
    else
      masq_errf(err, cap, "cert %s / key %s: %s", cert, key, gnutls_strerror(r));
    gnutls_certificate_free_credentials(creds);
    creds = NULL;
  }
out:
  gnutls_free(cd.data);
  wipe_free(&kd);
  return creds;
}

static int load_trust(gnutls_certificate_credentials_t creds, const char *ca, int insecure,
                      char *err, size_t cap) {
  int r;
  if (ca != NULL && ca[0] != '\0') {
    gnutls_datum_t d;
    if (read_file("CA", ca, &d, err, cap) != 0) return -1;
    r = gnutls_certificate_set_x509_trust_mem(creds, &d, GNUTLS_X509_FMT_PEM);
    gnutls_free(d.data);
    if (r < 0) return masq_errf(err, cap, "CA %s: %s", ca, gnutls_strerror(r));
    if (r == 0) return masq_errf(err, cap, "CA %s: no PEM certificate in it", ca);
    return 0;
  }
  if (insecure) return 0; /* nothing to verify against, on purpose */
  r = gnutls_certificate_set_x509_system_trust(creds);
  if (r < 0)
    return masq_errf(err, cap, "cannot load the system CA certificates: %s (give --ca FILE)",
                gnutls_strerror(r));
  if (r == 0)
    return masq_errf(err, cap,
                "no system CA certificates found (install ca-certificates, or give --ca FILE)");
  return 0;
}

gnutls_certificate_credentials_t masq_tls_client_creds(const char *ca_or_null, int insecure,
                                                       char *err, size_t cap) {
  gnutls_certificate_credentials_t creds;
  int r = gnutls_certificate_allocate_credentials(&creds);
  if (r < 0) {
    masq_errf(err, cap, "TLS credentials: %s", gnutls_strerror(r));
    return NULL;
  }
  if (load_trust(creds, ca_or_null, insecure, err, cap) != 0) {
    gnutls_certificate_free_credentials(creds);
    return NULL;
  }
  return creds;
}
