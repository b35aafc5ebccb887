/* The masq server role: accepts QUIC connections and serves MASQUE
 * requests on them. */
#ifndef MASQ_SERVER_SERVER_H
#define MASQ_SERVER_SERVER_H

#include "app/options.h"

/* Runs until SIGINT/SIGTERM. Returns the process exit status. */
int masq_server_run(const masq_opts *o);

#endif
