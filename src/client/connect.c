/* Placeholder while the CONNECT-IP client is being written. */
#include <stdio.h>

#include "client/connect.h"

int masq_connect_run(const masq_opts *o) {
  (void)o;
  fprintf(stderr, "masq connect: not built yet\n");
  return 1;
}
