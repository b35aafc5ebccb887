/* A self-signed ECDSA P-256 leaf certificate. It is not a CA: a client
 * given it as --ca trusts it because it is that very certificate (GnuTLS
 * accepts a peer certificate found in the trust list as is), which keeps
 * the key from being able to vouch for any other name. */
#include "app/gencert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "io/log.h"
#include "proto/addr.h"

static int add_san(gnutls_x509_crt_t crt, const char *name, char *err, size_t cap) {
  masq_ip ip;
  int r;
  /* An IP literal must be an iPAddress SAN (RFC 6125 §3.1.3.2): clients
   * connecting by address never look at DNS names. */
  if (masq_ip_parse(name, &ip) == 0)
    r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip.a,
                                             ip.family == 4 ? 4u : 16u, GNUTLS_FSAN_APPEND);
  else
    r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                             (unsigned)strlen(name), GNUTLS_FSAN_APPEND);
  if (r < 0) return masq_errf(err, cap, "cannot add name %s: %s", name, gnutls_strerror(r));
  return 0;
}

/* A positive 127-bit random serial (RFC 5280 §4.1.2.2 wants it unique
 * per issuer; every self-signed cert is its own issuer, but clients cache
 * by issuer+serial so it should still differ between runs). */
static int set_serial(gnutls_x509_crt_t crt) {
  unsigned char serial[16];
  int r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
  if (r < 0) return r;
  serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
  return gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
}

static int fill_crt(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const masq_opts *o,
                    const char *const *names, size_t nnames, char *err, size_t cap) {
  time_t now = time(NULL);
  unsigned char kid[64];
  size_t kidlen = sizeof(kid);
  int r;
  const char *step;
#define TRY(what, call)        \
  do {                         \
    step = what;               \
    if ((r = (call)) < 0) goto bad; \
  } while (0)
  TRY("set version", gnutls_x509_crt_set_version(crt, 3));
  TRY("set serial", set_serial(crt));
  /* Backdated a little so a client whose clock is behind accepts it. */
  TRY("set validity", gnutls_x509_crt_set_activation_time(crt, now - 3600));
  TRY("set validity",
      gnutls_x509_crt_set_expiration_time(crt, now + (time_t)o->days * 24 * 3600));
  TRY("set subject", gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, names[0],
                                                   (unsigned)strlen(names[0])));
  TRY("set key", gnutls_x509_crt_set_key(crt, key));
  TRY("set basic constraints", gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
  TRY("set key usage", gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
  TRY("set key purpose", gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
  TRY("compute key id", gnutls_x509_crt_get_key_id(crt, 0, kid, &kidlen));
  TRY("set key id", gnutls_x509_crt_set_subject_key_id(crt, kid, kidlen));
  TRY("set key id", gnutls_x509_crt_set_authority_key_id(crt, kid, kidlen));
#undef TRY
  for (size_t i = 0; i < nnames; i++)
    if (add_san(crt, names[i], err, cap) != 0) return -1;
  r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
  if (r < 0) return masq_errf(err, cap, "cannot sign: %s", gnutls_strerror(r));
  return 0;
bad:
  return masq_errf(err, cap, "cannot %s: %s", step, gnutls_strerror(r));
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Creates path (never replacing a file: a key may be in use) and writes
 * data. On failure nothing is left behind. */
static int write_new(const char *path, mode_t mode, const gnutls_datum_t *data, char *err,
                     size_t cap) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST)
      return masq_errf(err, cap, "%s already exists; remove it or choose another file", path);
    return masq_errf(err, cap, "cannot create %s: %s", path, strerror(errno));
  }
  /* The umask may have taken bits away but must not leave a key readable
   * by others; fchmod sets exactly mode. */
  if (fchmod(fd, mode) != 0 || write_all(fd, data->data, data->size) != 0 || fsync(fd) != 0) {
    int e = errno;
    close(fd);
    unlink(path);
    return masq_errf(err, cap, "cannot write %s: %s", path, strerror(e));
  }
  if (close(fd) != 0) {
    int e = errno;
    unlink(path);
    return masq_errf(err, cap, "cannot write %s: %s", path, strerror(e));
  }
  return 0;
}

static int export_and_write(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const masq_opts *o,
                            char *err, size_t cap) {
  gnutls_datum_t cpem = {NULL, 0}, kpem = {NULL, 0};
  int ret = -1, r;
  r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem);
  if (r >= 0) r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
                                                     GNUTLS_PKCS_PLAIN, &kpem);
  if (r < 0) {
    masq_errf(err, cap, "cannot encode: %s", gnutls_strerror(r));
  } else if (write_new(o->out_key, 0600, &kpem, err, cap) == 0) {
    if (write_new(o->out_cert, 0644, &cpem, err, cap) == 0)
      ret = 0;
    else
      unlink(o->out_key); /* a key without its certificate is of no use */
  }
  if (kpem.data) {
    gnutls_memset(kpem.data, 0, kpem.size);
    gnutls_free(kpem.data);
  }
  gnutls_free(cpem.data);
  return ret;
}

int masq_gencert(const masq_opts *o, char *err, size_t errcap) {
  const char *names[sizeof(o->names) / sizeof(o->names[0])];
  size_t nnames = o->nnames;
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  int ret = -1, r;

  if (nnames > sizeof(names) / sizeof(names[0])) nnames = sizeof(names) / sizeof(names[0]);
  for (size_t i = 0; i < nnames; i++) names[i] = o->names[i];
  if (nnames == 0) {
    names[0] = "localhost";
    nnames = 1;
  }
  if (o->days == 0) return masq_errf(err, errcap, "--days must be at least 1");
  if (strcmp(o->out_cert, o->out_key) == 0)
    return masq_errf(err, errcap, "--cert and --key both name %s; give two files", o->out_cert);

  if ((r = gnutls_x509_privkey_init(&key)) < 0 || (r = gnutls_x509_crt_init(&crt)) < 0) {
    masq_errf(err, errcap, "%s", gnutls_strerror(r));
    goto out;
  }
  r = gnutls_x509_privkey_generate2(key, GNUTLS_PK_ECDSA,
                                    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0);
  if (r < 0) {
    masq_errf(err, errcap, "cannot generate a key: %s", gnutls_strerror(r));
    goto out;
  }
  if (fill_crt(crt, key, o, names, nnames, err, errcap) != 0) goto out;
  if (export_and_write(crt, key, o, err, errcap) != 0) goto out;

  printf("wrote private key %s (mode 0600) and certificate %s, valid %u days for", o->out_key,
         o->out_cert, o->days);
  for (size_t i = 0; i < nnames; i++) printf("%s %s", i ? "," : "", names[i]);
  printf("\nclients trust it with: masq forward --ca %s ...\n", o->out_cert);
  /* The files are in place: a closed stdout loses only the message, so
   * it does not turn success into failure. */
  (void)fflush(stdout);
  ret = 0;
out:
  if (crt) gnutls_x509_crt_deinit(crt);
  if (key) gnutls_x509_privkey_deinit(key);
  return ret;
}
