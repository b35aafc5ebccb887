/* The masq forward role: local UDP ports forwarded through a MASQUE
 * proxy with CONNECT-UDP, ssh -L style, all over one QUIC connection. */
#ifndef MASQ_CLIENT_FORWARD_H
#define MASQ_CLIENT_FORWARD_H

#include "app/options.h"

/* Runs until SIGINT/SIGTERM or the connection is lost. Returns the exit
 * status. */
int masq_forward_run(const masq_opts *o);

#endif
