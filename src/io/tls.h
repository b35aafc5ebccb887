/* TLS credentials for both roles, with errors that say which file failed
 * and why, so a misconfigured deployment fails at startup. */
#ifndef MASQ_IO_TLS_H
#define MASQ_IO_TLS_H

#include <stddef.h>

#include <gnutls/gnutls.h>

/* Loads a PEM certificate chain and its unencrypted private key. Returns
 * the credentials (free with gnutls_certificate_free_credentials) or NULL
 * with the reason in err. */
gnutls_certificate_credentials_t masq_tls_server_creds(const char *cert, const char *key,
                                                       char *err, size_t cap);

/* Trust anchors for verifying the proxy: the PEM file ca_or_null if given
 * (non-empty), else the system store, else (insecure) none. The
 * credentials only hold the anchors: the caller still has to ask for
 * verification on each session (gnutls_session_set_verify_cert with the
 * proxy host name) unless insecure. Returns NULL with the reason in err. */
gnutls_certificate_credentials_t masq_tls_client_creds(const char *ca_or_null, int insecure,
                                                       char *err, size_t cap);

#endif
