/* masq connect: the CONNECT-IP client (RFC 9484), a VPN through a TUN
 * device whose addresses and routes come from the proxy. */
#ifndef MASQ_CLIENT_CONNECT_H
#define MASQ_CLIENT_CONNECT_H

#include "app/options.h"

/* Runs until a signal or the loss of the proxy; restores the host's
 * network configuration before returning. Returns the exit status. */
int masq_connect_run(const masq_opts *o);

#endif
