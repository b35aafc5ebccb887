/* masq http-proxy: a local HTTP/1.1 proxy. "CONNECT host:port" opens a
 * tunnel (200 Connection Established, then bytes both ways); a request
 * in absolute form ("GET http://host/path HTTP/1.1") goes to its origin
 * through a tunnel of its own, rewritten to origin form without the
 * hop-by-hop fields and with "Connection: close" (one request per
 * tunnel). Each tunnel is a plain CONNECT stream on one QUIC connection
 * to the MASQUE proxy. A refusal is answered 502, or 504 for a timeout
 * (masq_fe_gateway_status), with a Proxy-Status naming the error;
 * malformed requests get the parser's 4xx/5xx. */
#ifndef MASQ_CLIENT_HTTPPROXY_H
#define MASQ_CLIENT_HTTPPROXY_H

#include "app/options.h"

/* Runs until SIGINT/SIGTERM (0) or the first connection attempt fails
 * (1). Returns the exit status. */
int masq_httpproxy_run(const masq_opts *o);

#endif
