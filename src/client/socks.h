/* masq socks: a local SOCKS5 proxy (RFC 1928, with RFC 1929
 * username/password authentication when configured) whose CONNECTs
 * become plain CONNECT streams and whose UDP ASSOCIATEs become
 * CONNECT-UDP tunnels (one per target address), all over one QUIC
 * connection to the MASQUE proxy. BIND is answered "command not
 * supported". Replies to a refused CONNECT follow
 * masq_socks5_rep_from_proxy_status (proto/socks5.h). */
#ifndef MASQ_CLIENT_SOCKS_H
#define MASQ_CLIENT_SOCKS_H

#include "app/options.h"

/* Runs until SIGINT/SIGTERM (0) or the first connection attempt fails
 * (1). Returns the exit status. */
int masq_socks_run(const masq_opts *o);

#endif
