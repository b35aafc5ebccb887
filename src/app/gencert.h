/* `masq gencert`: a self-signed certificate and key for tests and private
 * deployments, usable on the client side as `--ca cert.pem`. */
#ifndef MASQ_APP_GENCERT_H
#define MASQ_APP_GENCERT_H

#include <stddef.h>

#include "app/options.h"

/* Writes an ECDSA P-256 key (PKCS#8 PEM, mode 0600) to o->out_key and a
 * self-signed certificate for o->names (IP literals as IP SANs, others as
 * DNS SANs; "localhost" if none) valid o->days days to o->out_cert, then
 * says on stdout where they went. Existing files are never overwritten.
 * Returns 0, or -1 with a one-line reason naming the file in err. */
int masq_gencert(const masq_opts *o, char *err, size_t errcap);

#endif
